package ingest

import (
	"strings"
	"testing"
)

// Two paragraphs a language, in the register of a piano method book.
var languageSamples = map[string][]string{
	"en": {"Keep the wrist loose and let the weight of the arm fall into the keys. Practise the scale slowly, hands separately at first, and listen for an even tone from every finger.",
		"The damper pedal should be changed just after each new harmony sounds, so that the previous chord does not blur into the next one."},
	"de": {"Halte das Handgelenk locker und lass das Gewicht des Armes in die Tasten fallen. Übe die Tonleiter langsam, zuerst mit jeder Hand allein, und achte auf einen gleichmäßigen Ton aller Finger.",
		"Das rechte Pedal wird kurz nach jeder neuen Harmonie gewechselt, damit der vorige Akkord nicht in den nächsten hinein verschwimmt."},
	"fr": {"Gardez le poignet souple et laissez le poids du bras tomber dans les touches. Travaillez la gamme lentement, d'abord mains séparées, en écoutant un son égal de chaque doigt.",
		"La pédale forte doit être changée juste après chaque nouvelle harmonie, afin que l'accord précédent ne se mélange pas au suivant."},
	"es": {"Mantén la muñeca suelta y deja que el peso del brazo caiga sobre las teclas. Practica la escala despacio, primero con cada mano por separado, y escucha un sonido parejo en todos los dedos.",
		"El pedal de resonancia debe cambiarse justo después de cada nueva armonía, para que el acorde anterior no se mezcle con el siguiente."},
	"it": {"Tieni il polso morbido e lascia che il peso del braccio cada sui tasti. Studia la scala lentamente, prima a mani separate, e ascolta un suono uguale da ogni dito.",
		"Il pedale di risonanza va cambiato subito dopo ogni nuova armonia, perché l'accordo precedente non si confonda con quello successivo."},
	"nl": {"Houd de pols soepel en laat het gewicht van de arm in de toetsen vallen. Oefen de toonladder langzaam, eerst met elke hand apart, en luister naar een gelijkmatige klank van iedere vinger.",
		"Het rechterpedaal moet vlak na elke nieuwe harmonie worden gewisseld, zodat het vorige akkoord niet in het volgende overloopt."},
	"pt": {"Mantenha o pulso solto e deixe o peso do braço cair sobre as teclas. Estude a escala devagar, primeiro com as mãos separadas, e ouça um som igual em todos os dedos.",
		"O pedal de sustentação deve ser trocado logo depois de cada nova harmonia, para que o acorde anterior não se misture com o seguinte."},
}

func segsOf(texts ...string) []Segment {
	out := make([]Segment, len(texts))
	for i, t := range texts {
		out[i] = Segment{Text: t, Page: i + 1}
	}
	return out
}

// Every supported language is told from a page of real text, and too
// little text, or text of no supported language, is English.
func TestDetectLanguage(t *testing.T) {
	d := NewLanguageDetector()
	for lang, paras := range languageSamples {
		for i, p := range paras {
			if got := d.Detect(segsOf(p)); got != lang {
				t.Errorf("%s paragraph %d: detected %q", lang, i, got)
			}
		}
	}
	for name, s := range map[string]string{
		"empty":           "",
		"too short":       "Tonleiter üben",
		"numbers only":    strings.Repeat("1 2 3 4 5 | 120 = 60, 3/4 ", 20),
		"another script":  "Держите запястье свободным и позвольте весу руки падать в клавиши, играйте гамму медленно.",
		"nil detector ok": "",
	} {
		det := d
		if name == "nil detector ok" {
			det = nil
			s = languageSamples["de"][0]
		}
		if got := det.Detect(segsOf(s)); got != DefaultLanguage {
			t.Errorf("%s: detected %q, want %q", name, got, DefaultLanguage)
		}
	}
}

// A document mixing languages gets the language most of its sampled text
// is in, wherever it stands: a German book with an English preface is
// German.
func TestDetectMixedDocumentTakesTheMajority(t *testing.T) {
	d := NewLanguageDetector()
	de := strings.Repeat(languageSamples["de"][0]+" "+languageSamples["de"][1]+" ", 20)
	en := strings.Repeat(languageSamples["en"][0]+" ", 10)
	if got := d.Detect(segsOf(en, de)); got != "de" {
		t.Errorf("English preface, German body: %q", got)
	}
	if got := d.Detect(segsOf(de[:len(de)/6], en, en, en)); got != "en" {
		t.Errorf("German page, English body: %q", got)
	}
}
