package report

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseBaseline(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		yaml    bool
		want    []BaselineEntry
		wantErr string
	}{
		{name: "one ID a line, comments and reasons",
			text: "# accepted deviations\n\nV0008\nC0003 no CAPA SASL # ignored\nRFC1939-3-cmd-arg-sep # tabs are refused\n",
			want: []BaselineEntry{{ID: "V0008"}, {ID: "C0003", Reason: "no CAPA SASL"}, {ID: "RFC1939-3-cmd-arg-sep", Reason: "tabs are refused"}}},
		{name: "YAML recognised by its first item", text: "# list\n- V0008\n- {id: E0001, reason: never sent}\n",
			want: []BaselineEntry{{ID: "V0008"}, {ID: "E0001", Reason: "never sent"}}},
		{name: "YAML by file name", text: "[2.1.1, V0002]", yaml: true,
			want: []BaselineEntry{{ID: "2.1.1"}, {ID: "V0002"}}},
		{name: "empty", text: "# nothing accepted\n", want: nil},
		{name: "YAML item without id", text: "- reason: why\n", wantErr: "no statement ID"},
		{name: "YAML nested list", text: "- [V0001]\n", wantErr: "want a statement ID"},
		{name: "stray dash in text", text: "V0001\n-- V0002\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBaseline([]byte(tt.text), tt.yaml)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
