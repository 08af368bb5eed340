package vector

// dot8Go is Σ u_i·c_i, the portable reference of dot8.
func dot8Go(u []uint8, c []int8) int32 {
	c = c[:len(u)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(u); i += 4 {
		s0 += int32(u[i]) * int32(c[i])
		s1 += int32(u[i+1]) * int32(c[i+1])
		s2 += int32(u[i+2]) * int32(c[i+2])
		s3 += int32(u[i+3]) * int32(c[i+3])
	}
	for ; i < len(u); i++ {
		s0 += int32(u[i]) * int32(c[i])
	}
	return s0 + s1 + s2 + s3
}
