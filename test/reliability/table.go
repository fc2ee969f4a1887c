package reliability

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Row is one scenario's line in the report.
type Row struct {
	Scenario string
	Offered  string // how much load, e.g. "3000 q @ 500/s"
	// Sent is the number of queries Answered and ServFail are rates of; 0
	// when the row has no query load of its own (then "-" is printed).
	Sent       int
	Answered   int
	ServFail   int
	Wrong      int
	P99        time.Duration // 0: none measured
	PeakRSS    int64         // bytes; 0: not measured
	Goroutines int           // peak; 0: not measured
	Note       string
}

// LoadRow fills the query columns of a row from a load's result.
func LoadRow(scenario string, r *Result) Row {
	return Row{
		Scenario: scenario,
		Offered:  fmt.Sprintf("%d q @ %.0f/s", r.Sent, r.OfferedRate()),
		Sent:     r.Sent,
		Answered: r.Answered,
		ServFail: r.ServFail,
		Wrong:    r.Wrong,
		P99:      r.P99(),
	}
}

// WithPeaks fills the resource columns from a sampler's peaks.
func (r Row) WithPeaks(p Peaks) Row {
	r.PeakRSS = p.PeakRSS
	r.Goroutines = p.Goroutines()
	return r
}

var columns = []string{"Scenario", "Load offered", "Answered", "SERVFAIL", "Wrong", "p99", "Peak RSS", "Goroutines (peak)", "Note"}

func (r Row) cells() []string {
	answered, servfail, wrong := "-", "-", "-"
	if r.Sent > 0 {
		answered = fmt.Sprintf("%d (%s)", r.Answered, pct(r.Answered, r.Sent))
		servfail = fmt.Sprintf("%d (%s)", r.ServFail, pct(r.ServFail, r.Sent))
		wrong = fmt.Sprint(r.Wrong)
	}
	p99, rss, gor := "-", "-", "-"
	if r.P99 > 0 {
		p99 = fmtDuration(r.P99)
	}
	if r.PeakRSS > 0 {
		rss = fmt.Sprintf("%.1f MiB", float64(r.PeakRSS)/(1<<20))
	}
	if r.Goroutines > 0 {
		gor = fmt.Sprint(r.Goroutines)
	}
	return []string{r.Scenario, r.Offered, answered, servfail, wrong, p99, rss, gor, r.Note}
}

func pct(n, of int) string {
	v := 100 * float64(n) / float64(of)
	switch {
	case n == 0:
		return "0%"
	case v < 0.01:
		return "<0.01%"
	case v < 10:
		return fmt.Sprintf("%.2f%%", v)
	}
	return fmt.Sprintf("%.1f%%", v)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// FormatTable renders rows as an aligned text table with a header.
func FormatTable(rows []Row) string {
	all := [][]string{columns}
	for _, r := range rows {
		all = append(all, r.cells())
	}
	width := make([]int, len(columns))
	for _, cs := range all {
		for i, c := range cs {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, cs := range all {
		for i, c := range cs {
			if i == len(cs)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// MarkdownHeader is the header of the Markdown table AppendMarkdown writes.
func MarkdownHeader() string {
	return "| " + strings.Join(columns, " | ") + " |\n|" + strings.Repeat("---|", len(columns)) + "\n"
}

// Markdown renders rows as Markdown table rows (no header).
func Markdown(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		cs := r.cells()
		for i, c := range cs {
			cs[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(cs, " | ") + " |\n")
	}
	return b.String()
}

// AppendMarkdown appends rows to the file at path, writing the header first
// when the file is new or empty.
func AppendMarkdown(path string, rows []Row) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() == 0 {
		_, err = f.WriteString(MarkdownHeader())
	}
	if err == nil {
		_, err = f.WriteString(Markdown(rows))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}
