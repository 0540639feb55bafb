package popa3d

import (
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// popa3d is start.sh's server, plain POP3 only (it has no TLS).
var popa3d = peertest.Server{Dir: "popa3d", Name: "popa3d", Logs: []string{"socat.log"}, Env: []string{"MAIL_DIR"}, Plain: true}

// probeTimeout bounds one probe run (about 40 s).
const probeTimeout = 3 * time.Minute

func TestProbeAgainstPopa3d(t *testing.T) {
	missing := peertest.MissingForNamespacedDaemon("popa3d", "popa3d", "POPA3D_ROOT")
	peertest.Require(t, "popa3d", peertest.Missing(missing, "apt-get install socat openssl libpam-pwdfile liblockfile1, and apt-get download popa3d && dpkg-deb -x popa3d_*.deb /opt/popa3d"))
	if testing.Short() {
		t.Skip("runs the probe against popa3d (about 40 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, popa3d, probeTimeout)
	probe.Storage = peertest.MboxStorage("MAIL_DIR")
	probe.CheckReadonly(t, peertest.Readonly{
		Profile: "rfc1939", Messages: 6,
		Deviations: expectedDeviations, MayDeviate: mayDeviate, Observed: expectedObserved,
	})
}
