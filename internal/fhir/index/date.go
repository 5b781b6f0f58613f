package index

import (
	"errors"
	"fmt"
	"time"
)

// ErrDate marks an error from DateRange.
var ErrDate = errors.New("invalid FHIR date")

// DateRange parses a FHIR date, dateTime or instant (R4 §2.24.0.1
// "Primitive Types") at any precision (2020, 2020-03, 2020-03-04,
// 2020-03-04T10:00Z, 2020-03-04T10:00:00Z, 2020-03-04T10:00:00.123+01:00)
// into the half-open range [low, high) of unix microseconds it stands for
// at that precision (R4 §3.1.1.5.6 "date": "the date parameter format
// implies an interval"). Minute precision without seconds, which FHIR
// allows in search values, is accepted too. A date or dateTime without a
// timezone is taken to be UTC: FHIR leaves its zone to the server, and this
// one keeps UTC so that the indexer and the query parser agree. Fractional
// seconds narrow the range to their own precision (rounded outwards to whole
// microseconds); a leap second (:60) is the first second of the next
// minute. Errors wrap ErrDate.
func DateRange(s string) (low, high int64, err error) {
	p := dateParser{s: s}
	year := p.digits(4)
	month, day, hour, minute, sec, nsec, offset := 1, 1, 0, 0, 0, 0, 0
	next := func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	if p.more() {
		p.sep('-')
		month = p.digits(2)
		next = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	}
	if p.more() {
		p.sep('-')
		day = p.digits(2)
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	}
	if p.more() {
		p.sep('T')
		hour = p.digits(2)
		p.sep(':')
		minute = p.digits(2)
		step := time.Minute
		if p.more() && p.peek() == ':' {
			p.i++
			sec = p.digits(2)
			step = time.Second
			if p.more() && p.peek() == '.' {
				p.i++
				nsec, step = p.fraction()
			}
		}
		next = func(t time.Time) time.Time { return t.Add(step) }
		if p.more() {
			offset = p.zone()
		}
	}
	if p.more() {
		p.fail("unexpected %q", s[p.i:])
	}
	if p.err != nil {
		return 0, 0, p.err
	}
	switch {
	case year < 1:
		return 0, 0, fmt.Errorf("%w %q: year 0000", ErrDate, s)
	case month < 1 || month > 12:
		return 0, 0, fmt.Errorf("%w %q: month %02d", ErrDate, s, month)
	case day < 1 || day > daysIn(year, month):
		return 0, 0, fmt.Errorf("%w %q: %04d-%02d has no day %02d", ErrDate, s, year, month, day)
	case hour > 23 || minute > 59 || sec > 60:
		return 0, 0, fmt.Errorf("%w %q: time %02d:%02d:%02d", ErrDate, s, hour, minute, sec)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	return floorMicro(t), ceilMicro(next(t)), nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorMicro(t time.Time) int64 { return t.UnixMicro() }

func ceilMicro(t time.Time) int64 {
	if t.Nanosecond()%1000 != 0 {
		return t.UnixMicro() + 1
	}
	return t.UnixMicro()
}

// dateParser reads a date left to right; the first error sticks.
type dateParser struct {
	s   string
	i   int
	err error
}

func (p *dateParser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w %q: %s", ErrDate, p.s, fmt.Sprintf(format, args...))
	}
}

// more reports whether input is left and no error has occurred.
func (p *dateParser) more() bool { return p.err == nil && p.i < len(p.s) }

func (p *dateParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// sep consumes c, or fails.
func (p *dateParser) sep(c byte) bool {
	if p.err != nil {
		return false
	}
	if p.peek() != c {
		p.fail("want %q at offset %d", c, p.i)
		return false
	}
	p.i++
	return true
}

// digits reads exactly n decimal digits.
func (p *dateParser) digits(n int) int {
	v := 0
	for k := 0; k < n; k++ {
		c := p.peek()
		if p.err != nil || c < '0' || c > '9' {
			p.fail("want %d digits at offset %d", n, p.i-k)
			return -1
		}
		v = v*10 + int(c-'0')
		p.i++
	}
	return v
}

// fraction reads the digits of fractional seconds and returns them as
// nanoseconds and their precision.
func (p *dateParser) fraction() (nsec int, step time.Duration) {
	step = time.Second
	n := 0
	for ; '0' <= p.peek() && p.peek() <= '9'; p.i++ {
		if n < 9 {
			nsec = nsec*10 + int(p.peek()-'0')
			step /= 10
		}
		n++
	}
	if n == 0 {
		p.fail("no digits after '.'")
	}
	for k := min(n, 9); k < 9; k++ {
		nsec *= 10
	}
	return nsec, step
}

// zone reads Z or ±hh:mm and returns the offset in seconds east of UTC.
func (p *dateParser) zone() int {
	switch c := p.peek(); c {
	case 'Z':
		p.i++
		return 0
	case '+', '-':
		p.i++
		h := p.digits(2)
		p.sep(':')
		m := p.digits(2)
		if p.err == nil && (h > 14 || m > 59) {
			p.fail("offset %c%02d:%02d", c, h, m)
		}
		if c == '-' {
			return -(h*3600 + m*60)
		}
		return h*3600 + m*60
	}
	p.fail("want Z or ±hh:mm at offset %d", p.i)
	return 0
}
