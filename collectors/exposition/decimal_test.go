package exposition

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// sameFloat fails t unless parseFloat's answer for s is the one the
// parser had before the decimal fast path: strconv's, for Prometheus'
// syntax. Values are compared bit for bit (-0 is not 0); NaNs as NaNs.
func sameFloat(t *testing.T, s string) {
	t.Helper()
	got, gotErr := parseFloat([]byte(s))
	want, wantErr := slowParseFloat(s)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("parseFloat(%q): error %v, want %v", s, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
		t.Fatalf("parseFloat(%q) = %v (%#x), want %v (%#x)", s, got, math.Float64bits(got), want, math.Float64bits(want))
	}
}

// slowParseFloat is parseFloat without the fast path.
func slowParseFloat(s string) (float64, error) {
	if strings.ContainsAny(s, "pP_") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, 64)
}

func TestParseDecimalIsStrconvs(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "+0", "00", "0.0", "-0.0", ".0", "0.", ".", "-", "+", "", "e5", ".e5", "1e", "1e+", "1e-", "1.e5", ".5e-3",
		"1", "-1", "42", "007", "1.5", "-0.25", "1.5e+06", "1e22", "1e23", "1e-22", "1e-23", "123456789e-30",
		"9007199254740992", "9007199254740993", "9007199254740991.5", "18446744073709551615", "18446744073709551616",
		"1234567890123456789", "12345678901234567890", "0.00000000000000000000000000001", "1.0000000000000000000",
		"1e0000000000000000000000001", "0e99999", "1e-99999", "-1e400", "1e400",
		"NaN", "nan", "+Inf", "-Inf", "Inf", "infinity", "0x1p-2", "0x10", "1_000", "1__0", " 1", "1 ", "1,5", "--1", "+-1", "1e5e5", "1.2.3",
		"4.2e1", "4.20E+01", "3.0000000000000004", "0.1", "0.3", "2.5e-308", "5e-324", "1.7976931348623157e308",
	} {
		sameFloat(t, s)
	}
	// Random decimals near and across the fast path's bounds: mantissas of
	// up to 20 digits, points anywhere, exponents up to ±40.
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 200000 {
		b.Reset()
		switch r.IntN(4) {
		case 0:
			b.WriteByte('-')
		case 1:
			b.WriteByte('+')
		}
		n := 1 + r.IntN(20)
		point := r.IntN(n + 2)
		for k := range n {
			if k == point {
				b.WriteByte('.')
			}
			if k < 3 && r.IntN(4) == 0 {
				b.WriteByte('0')
			} else {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		if r.IntN(2) == 0 {
			b.WriteByte("eE"[r.IntN(2)])
			switch r.IntN(3) {
			case 0:
				b.WriteByte('-')
			case 1:
				b.WriteByte('+')
			}
			b.WriteString(strconv.Itoa(r.IntN(41)))
		}
		sameFloat(t, b.String())
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0.25", "1.5e+06", "9007199254740993", "1e23", "NaN", "+Inf", "0x1p-2", "1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { sameFloat(t, s) })
}

func BenchmarkParseFloat(b *testing.B) {
	values := [][]byte{[]byte("1234"), []byte("0.000123"), []byte("-17.25"), []byte("1.234567e+06"), []byte("98765.4321"), []byte("0")}
	for b.Loop() {
		for _, v := range values {
			if _, err := parseFloat(v); err != nil {
				b.Fatal(err)
			}
		}
	}
}
