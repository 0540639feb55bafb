package twisted

import (
	"os"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// twisted is start.sh's server: Twisted's POP3 protocol over its Maildir
// mailbox, plain POP3 only (Twisted's POP3 server has no STLS).
var twisted = peertest.Server{Dir: "twisted", Name: "Twisted POP3", Logs: []string{"twisted.log"}, Env: []string{"MAILDIRS"}, Plain: true}

// probeTimeout bounds one probe run (a few seconds against Twisted).
const probeTimeout = 2 * time.Minute

func TestProbeAgainstTwisted(t *testing.T) {
	var missing []string
	if _, err := os.Stat("/usr/lib/python3/dist-packages/twisted/mail/pop3.py"); err != nil {
		missing = append(missing, "python3-twisted")
	}
	peertest.Require(t, "Twisted", peertest.Missing(missing, "apt-get install python3-twisted"))
	if testing.Short() {
		t.Skip("runs the probe against Twisted's POP3 server; not in -short mode")
	}
	probe := peertest.NewProbe(t, twisted, probeTimeout)
	// Twisted carries DELE out at once (the file goes to .Trash/cur) and
	// nothing brings it back on a close without QUIT: a readonly run
	// that sent DELE shows in the storage check first.
	probe.Storage = peertest.MaildirStorage("MAILDIRS")
	probe.CheckReadonly(t, peertest.Readonly{
		Profile: "rfc1939", Messages: 6,
		Deviations: expectedDeviations, MayDeviate: mayDeviate, Observed: expectedObserved,
	})
}
