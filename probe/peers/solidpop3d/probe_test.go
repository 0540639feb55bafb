package solidpop3d

import (
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// solid is start.sh's server, plain POP3 only (it has no TLS).
var solid = peertest.Server{Dir: "solidpop3d", Name: "solid-pop3d", Logs: []string{"socat.log"}, Env: []string{"MAILDIRS"}, Plain: true}

// probeTimeout bounds one probe run (about 55 s).
const probeTimeout = 3 * time.Minute

func TestProbeAgainstSolidPOP3d(t *testing.T) {
	missing := peertest.MissingForNamespacedDaemon("solid-pop3d", "solid-pop3d", "SOLID_POP3D_ROOT")
	peertest.Require(t, "solid-pop3d", peertest.Missing(missing, "apt-get install socat openssl libpam-pwdfile liblockfile1, and apt-get download solid-pop3d && dpkg-deb -x solid-pop3d_*.deb /opt/solid-pop3d"))
	if testing.Short() {
		t.Skip("runs the probe against solid-pop3d (about 55 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, solid, probeTimeout)
	probe.Storage = peertest.MaildirStorage("MAILDIRS")
	probe.CheckReadonly(t, peertest.Readonly{
		Profile: "rfc1939", Messages: 6,
		Deviations: expectedDeviations, MayDeviate: mayDeviate, Observed: expectedObserved,
	})
}
