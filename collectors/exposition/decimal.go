package exposition

// A sample's value is most often a plain decimal: "42", "-0.25",
// "1.5e+06". Those whose digits fit in a float64's 53-bit mantissa and
// whose power of ten is one a float64 holds exactly (10^0 to 10^22) are
// one multiplication or division away from their value: IEEE rounds that
// one operation correctly, so the result is the one strconv.ParseFloat
// gives (the fast path of Clinger's algorithm). strconv.ParseFloat and
// the syntax check before it were the largest item of a scrape's parse
// in a CPU profile; one pass over the bytes here takes a quarter of their
// time (BenchmarkParseFloat).

// exactPow10 holds the powers of ten a float64 represents exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// maxExactMantissa is 2^53: every integer up to it is exactly a float64.
const maxExactMantissa = 1 << 53

// parseDecimal returns b's value and true when b is a plain decimal that
// converts exactly as described above: an optional sign, digits with an
// optional point, an optional exponent. It returns false for everything
// else (other syntax, NaN and Inf, more digits, larger exponents,
// errors), for strconv.ParseFloat to decide.
func parseDecimal(b []byte) (f float64, ok bool) {
	i, neg := 0, false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	digits, exp, sawDigit := 0, 0, false
	// digit adds c to the mantissa; false when it would overflow.
	digit := func(c byte) bool {
		sawDigit = true
		if digits == 19 {
			return false
		}
		mant = mant*10 + uint64(c-'0')
		digits++
		return true
	}
	for ; i < len(b) && isDecimalDigit(b[i]); i++ {
		if !digit(b[i]) {
			return 0, false
		}
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && isDecimalDigit(b[i]); i++ {
			if !digit(b[i]) {
				return 0, false
			}
			exp--
		}
	}
	if !sawDigit {
		return 0, false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		expNeg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			expNeg = b[i] == '-'
			i++
		}
		start, e := i, 0
		for ; i < len(b) && isDecimalDigit(b[i]); i++ {
			if e >= 1000 {
				return 0, false // far beyond the exact powers: strconv's
			}
			e = e*10 + int(b[i]-'0')
		}
		if i == start {
			return 0, false
		}
		if expNeg {
			e = -e
		}
		exp += e
	}
	if i != len(b) || mant > maxExactMantissa {
		return 0, false
	}
	f = float64(mant)
	switch {
	case mant == 0 || exp == 0:
	case exp > 0 && exp < len(exactPow10):
		f *= exactPow10[exp]
	case exp < 0 && -exp < len(exactPow10):
		f /= exactPow10[-exp]
	default:
		return 0, false
	}
	if neg {
		f = -f
	}
	return f, true
}

func isDecimalDigit(c byte) bool { return '0' <= c && c <= '9' }
