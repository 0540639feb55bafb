package report

import (
	"html/template"
	"io"
	"strings"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// The HTML report is one file with inline CSS and no script or external
// asset, so it can be attached to a ticket and opened offline.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"verdicts": func() []verdict.Verdict { return Verdicts },
	"count":    func(m map[verdict.Verdict]int, v verdict.Verdict) int { return m[v] },
	"judged": func(v verdict.Verdict) bool {
		return v == verdict.Deviates || v == verdict.Error
	},
	"class":    func(v verdict.Verdict) string { return "v-" + string(v) },
	"time":     func(r *Report) string { return r.StartTime.UTC().Format("2006-01-02 15:04:05 MST") },
	"join":     strings.Join,
	"counts":   CountsText,
	"show":     ShowValue,
	"difftext": func(d ProfileDifference, name string) string { return d.Text(name) },
	"plural":   harness.Count,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>POP3 conformance: {{.Target.Name}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1f24;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}
dl.meta dt{font-weight:600}
table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.v-conformant{color:#116329}
.v-deviates,.v-error{color:#a40e26;font-weight:700}
.v-inconclusive{color:#7d4e00}
.v-not-applicable,.v-not-observable,.v-not-run{color:#57606a}
tr.v-deviates td,tr.v-error td{background:#ffebe9}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.85em}
.error{border-left:4px solid #a40e26;background:#ffebe9;padding:.5em 1em}
details summary{cursor:pointer}
small.note{color:#57606a;font-weight:400}
tr:target td{outline:2px solid #0969da}
</style>
</head>
<body>
<h1>POP3 conformance report</h1>
<dl class="meta">
<dt>Target</dt><dd>{{.Target.Name}}</dd>
<dt>Profile</dt><dd>{{.Profile}}</dd>
{{if not .StartTime.IsZero}}<dt>Started</dt><dd>{{time .}}, took {{printf "%.1f" .DurationSeconds}} s</dd>{{end}}
<dt>Tool</dt><dd>{{.Tool.Name}} {{.Tool.Version}}</dd>
{{with .Expect}}<dt>Baseline</dt><dd>{{.Text}}</dd>{{end}}
<dt>Allowed</dt><dd>{{.Target.AllowedText}}</dd>
{{with .Commands}}<dt>Commands sent, by class</dt><dd>{{counts .Sent}}</dd>
{{with .Refused}}<dt>Kept from the server (not allowed)</dt><dd>{{counts .}}</dd>{{end}}{{end}}
{{with .Facts}}{{if .Measured}}<dt>Measured before judging</dt><dd><pre>{{.Summary}}</pre></dd>{{end}}{{end}}
{{with .Target.LabelFilter}}<dt>Label filter</dt><dd><code>{{.}}</code></dd>{{end}}
{{with .Target.Certificate}}<dt>Certificate</dt><dd>{{.Text}}</dd>{{end}}
</dl>
{{with .SuiteError}}<p class="error"><strong>The suite could not judge the target:</strong> {{.}}</p>{{end}}
{{range .Warnings}}<p class="error"><strong>Warning:</strong> {{.}}</p>{{end}}
{{with .Deviating}}<h2 id="deviations">Deviations index</h2>
<p>{{plural (len .) "statement"}} deviate or could not finish; each links to its row below.</p>
<ul class="index">
{{range .}}<li><a href="#{{.ID}}">{{.ID}}</a> <span class="{{class .Verdict}}">{{.Verdict}}</span>{{with .AcceptedText}} <em>({{.}})</em>{{end}}: {{.Summary}}</li>
{{end}}</ul>{{else}}{{if not .SuiteError}}<p class="v-conformant"><strong>No statement deviates.</strong></p>{{end}}{{end}}

<h2>Summary</h2>
<table>
<tr><th>group</th><th>total</th>{{range verdicts}}<th class="{{class .}}">{{.}}</th>{{end}}</tr>
{{range .Summary.Groups}}{{$g := .}}<tr><td>{{.Name}}</td><td class="n">{{.Total}}</td>{{range verdicts}}<td class="n">{{count $g.Counts .}}</td>{{end}}</tr>
{{end}}<tr><th>all</th><th class="n">{{.Summary.Total}}</th>{{$s := .Summary}}{{range verdicts}}<th class="n">{{count $s.Counts .}}</th>{{end}}</tr>
</table>

{{with .ProfileScores}}<h2>Closest profile by statements</h2>
{{if eq $.ClosestProfileBy "statements"}}<p>The specs ran once per bundled profile; the server passes the most statements under <strong>{{$.ClosestProfile}}</strong>.</p>{{end}}
<table>
<tr><th>profile</th><th class="v-conformant">conformant</th><th class="v-deviates">deviates</th><th>other</th><th>deviating statements</th></tr>
{{range .}}<tr><td>{{.Name}}{{if .Chosen}} (chosen){{end}}</td>{{if .Error}}<td class="n">–</td><td class="n">–</td><td class="n">–</td><td class="v-error">could not be judged: {{.Error}}</td>{{else}}<td class="n">{{.Conformant}}</td><td class="n">{{.Deviates}}</td><td class="n">{{.Other}}</td><td><small>{{range $i, $id := .Deviating}}{{if $i}}, {{end}}<a href="#{{$id}}">{{$id}}</a>{{end}}</small></td>{{end}}</tr>
{{end}}</table>{{end}}
{{with .Profiles}}<h2>Closest profile{{if $.ProfileScores}} by parameters{{end}}</h2>
<ul>
{{range .}}{{$m := .}}<li><strong>{{.Name}}</strong>{{if .Chosen}} (chosen){{end}}: {{.Summary}}
{{with .Differences}}<ul>{{range .}}<li>{{difftext . $m.Name}}</li>{{end}}</ul>{{end}}</li>
{{end}}</ul>{{end}}
{{if .Observed}}<h2>Observed server parameters</h2>
<table>
<tr><th>parameter</th><th>value</th><th>how</th></tr>
{{$o := .Observation}}{{$r := .}}{{range $k := .ObservedKeys}}<tr><td>{{$k}}</td><td><code>{{show (index $r.Observed $k)}}</code></td><td><small>{{with $o}}{{index .Methods $k}}{{end}}</small></td></tr>
{{end}}</table>
{{with .Observation}}<p><small>Measured after the specs in {{printf "%.1f" .Seconds}} s over {{plural .Connections "connection"}}.</small></p>
{{range $k, $v := .NotMeasured}}<p><small>Not measured: {{$k}} ({{$v}})</small></p>{{end}}
{{range .Errors}}<p class="error">Broke off: {{.}}</p>{{end}}
{{with .Evidence}}<details><summary>evidence (redacted transcripts)</summary>{{range $k, $v := .}}<h3>{{$k}}</h3><pre>{{$v}}</pre>{{end}}</details>{{end}}{{end}}{{end}}

<h2>Statements</h2>
<table>
<tr><th>id</th><th>source</th><th>§</th><th>level</th><th>verdict</th><th>summary and evidence</th></tr>
{{range .Statements}}<tr class="{{class .Verdict}}" id="{{.ID}}">
<td><a href="#{{.ID}}">{{.ID}}</a></td><td>{{.Source}}</td><td>{{.Section}}</td><td>{{.Level}}</td>
<td class="{{class .Verdict}}">{{.Verdict}}{{with .Note}}<br><small class="note">{{.}}</small>{{end}}</td>
<td>{{.Summary}}{{with .Reason}}<br><small>{{.}}</small>{{end}}
{{with .ExpectedText}}<br><small>profile expects: {{.}}</small>{{end}}{{with .ObservedText}}<br><small>measured: {{.}}</small>{{end}}
{{range .Specs}}{{if judged .Verdict}}<details open><summary><span class="{{class .Verdict}}">{{.Verdict}}</span>: {{.Text}}</summary>
{{with .Reason}}<pre>{{.}}</pre>{{end}}{{with .Location}}<small>{{.}}</small>{{end}}
{{with .Transcript}}<details><summary>transcript</summary><pre>{{.}}</pre></details>{{end}}
</details>{{else}}<div><small><span class="{{class .Verdict}}">{{.Verdict}}</span>: {{.Text}}{{with .Reason}} — {{.}}{{end}}</small></div>{{end}}{{end}}
</td></tr>
{{end}}</table>
{{with .UnknownIDs}}<p>Specs named requirements the catalogue does not hold: {{join . ", "}}</p>{{end}}
</body>
</html>
`))

func writeHTML(w io.Writer, r *Report) error { return htmlTemplate.Execute(w, r) }
