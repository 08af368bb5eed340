#include "textflag.h"

// func prefetch(p unsafe.Pointer, lines int)
TEXT ·prefetch(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ p+0(FP), AX
	MOVQ lines+8(FP), CX
	TESTQ CX, CX
	JLE done
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JNZ loop
done:
	RET

// func prefetchRows(base unsafe.Pointer, stride int, nodes []int32, lines int)
TEXT ·prefetchRows(SB), NOSPLIT|NOFRAME, $0-48
	MOVQ base+0(FP), AX
	MOVQ stride+8(FP), BX
	MOVQ nodes_base+16(FP), SI
	MOVQ nodes_len+24(FP), DI
	MOVQ lines+40(FP), R8
	TESTQ DI, DI
	JLE rowsdone
	TESTQ R8, R8
	JLE rowsdone
row:
	MOVLQSX (SI), CX
	IMULQ BX, CX
	ADDQ AX, CX
	MOVQ R8, DX
rowline:
	PREFETCHT0 (CX)
	ADDQ $64, CX
	DECQ DX
	JNZ rowline
	ADDQ $4, SI
	DECQ DI
	JNZ row
rowsdone:
	RET
