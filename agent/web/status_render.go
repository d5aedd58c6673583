package web

import "strings"

// The status page's HTML, written by hand: html/template would keep every
// exported method in the binary (it calls them by reflection), 2.3 MB on
// armv7, over the flash budget. Every outside string passes through esc.

const statusStyle = `body{font:14px/1.4 system-ui,sans-serif;margin:1em auto;max-width:56em;padding:0 1em;color:#222}
h1{font-size:1.4em;margin-bottom:0}h2{font-size:1.1em;margin:1.4em 0 .3em}
p.meta{color:#666;margin-top:.2em}
.verdict{padding:.6em .8em;border-radius:4px;background:#e6f4ea;font-weight:600}
.verdict.behind{background:#fdecea}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}
th{font-weight:600;width:12em}thead th{width:auto;background:#f5f5f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.bad{color:#b3261e}
figure.plot{margin:.4em 0 .8em}figure.plot figcaption{color:#444;font-size:.92em}
#plots svg{display:block}
code,.err{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-word}`

// statusRefresh is how often the page reloads itself, in seconds.
const statusRefresh = "15"

type htmlWriter struct{ strings.Builder }

// htmlEscaper escapes text and attribute values, as html.EscapeString does
// (that package would bring its table of entities along).
var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

func esc(s string) string { return htmlEscaper.Replace(s) }

// put writes its arguments: strings as they are (markup), figures as
// <data> elements.
func (w *htmlWriter) put(parts ...any) {
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			w.WriteString(p)
		case figure:
			w.WriteString(`<data data-series="` + esc(p.Series) + `" value="` + esc(p.Value) + `">` + esc(p.Text) + `</data>`)
		}
	}
}

// row writes a table row of a heading and a cell.
func (w *htmlWriter) row(heading string, cell ...any) {
	w.put(`<tr><th>`, heading, `</th><td>`)
	w.put(cell...)
	w.put("</td></tr>\n")
}

func okClass(ok bool) string {
	if ok {
		return "ok"
	}
	return "bad"
}

func renderStatus(v statusView) []byte {
	var w htmlWriter
	w.put(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="`+statusRefresh+`">
<title>ferry on `, esc(v.Host), `</title>
<style>`, statusStyle, `</style></head>
<body>
<h1>ferry on `, esc(v.Host), `</h1>
<p class="meta">version `, esc(v.Version), `, up `, v.Uptime, `; as of `, v.Now,
		`; refreshes every `+statusRefresh+` s. The figures are those of <a href="/metrics">/metrics</a>.</p>
`)
	verdictClass := "verdict"
	if v.Behind {
		verdictClass += " behind"
	}
	w.put(`<p class="`, verdictClass, `" id="verdict">`, esc(v.Verdict), "</p>\n")

	w.put("<h2>The last hour</h2>\n<div id=\"plots\">\n")
	for _, p := range v.Plots {
		w.renderPlot(p, v.NowUnix)
	}
	w.put("</div>\n")

	w.put("<h2>Buffer</h2>\n<table id=\"buffer\">\n")
	w.row("in use", v.BufferUsed, " of ", v.BufferMax, " (file: ", v.BufferFile, ")")
	w.row("samples waiting", v.Samples, " (blocks: ", v.Blocks, ", series: ", v.Series, "); ", v.HeadSamples, " more not yet on disk")
	w.row("oldest sample", v.Oldest)
	w.row("newest sample", v.Newest)
	w.row("backlog age", v.BacklogAge)
	clock := []any{v.ClockHeld, " samples held until the wall clock is set, ", v.ClockDropped, " dropped; jumps:"}
	for i, j := range v.ClockJumps {
		if i > 0 {
			clock = append(clock, ",")
		}
		clock = append(clock, " ", j.Count, " ", esc(j.Direction))
	}
	w.row("wall clock", clock...)
	w.put("</table>\n")

	w.put("<h2>Remote write</h2>\n<table id=\"remote-write\">\n")
	if v.Sending {
		if v.Endpoint != "" {
			w.row("receiver", "<code>", esc(v.URL), "</code> (endpoint <code>", esc(v.Endpoint), "</code>)")
		} else {
			w.row("receiver", "<code>", esc(v.URL), "</code>")
		}
		w.row("sent", v.Sent, " samples, ", v.BytesSent, " on the wire")
		w.row("send rate", `<span id="send-rate">`, esc(v.SendRate), "</span>")
		w.row("last success", v.LastSuccess)
		w.row("failed requests", v.Failures, " (retried)")
		lastErr := "none"
		if v.LastError != "" {
			lastErr = v.LastErrorAt + ": " + v.LastError
		}
		w.row("last error", `<span class="err" id="last-error">`, esc(lastErr), "</span>")
		// The other endpoints, one line each.
		for _, o := range v.MoreSenders {
			line := []any{"<code>", esc(o.URL), "</code>: sent ", o.Sent, " samples, last success ", o.LastSuccess, ", ", o.Failures, " failed requests"}
			if o.LastError != "" {
				line = append(line, `; last error <span class="err">`, esc(o.LastErrorAt+": "+o.LastError), "</span>")
			}
			w.row("endpoint "+esc(o.Endpoint), line...)
		}
	} else {
		w.put("<tr><td>No --remote-write.url: nothing is sent.</td></tr>\n")
	}
	w.put("</table>\n")

	w.put("<h2>Dropped samples</h2>\n<table id=\"drops\">\n<thead><tr><th>where</th><th>reason</th><th>samples</th></tr></thead>\n")
	for _, d := range v.Drops {
		w.put("<tr><td>", d.Where, "</td><td>", d.Reason, `</td><td class="n">`, d.Count, "</td></tr>\n")
	}
	w.put("</table>\n")

	w.put("<h2>Sources</h2>\n<table id=\"sources\">\n<thead><tr><th>source</th><th>state</th><th>last run</th><th>samples</th><th>failed runs</th></tr></thead>\n")
	for _, s := range v.Sources {
		w.put("<tr><td><code>", esc(s.Name), `</code></td><td class="`, okClass(s.OK), `">`, s.State)
		if s.LastErr != "" {
			w.put(`<div class="err">`, esc(s.LastErr), "</div>")
		}
		w.put("</td><td>", s.LastRun, `</td><td class="n">`, s.Appended, `</td><td class="n">`, s.Errors, "</td></tr>\n")
	}
	w.put("</table>\n")
	if len(v.Collectors) > 0 {
		w.put(`<p id="collectors">Host collectors (source <code>node</code>): `)
		for i, c := range v.Collectors {
			if i > 0 {
				w.put(", ")
			}
			w.put(`<span class="`, okClass(c.OK), `">`, esc(c.Name), " ", c.State, "</span>")
		}
		w.put(".</p>\n")
	}
	w.put("</body></html>\n")
	return []byte(w.String())
}
