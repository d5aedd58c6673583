package config

import (
	"strings"
	"testing"

	"github.com/ferry-agent/ferry/agent/remotewrite"
)

// TestRemoteWriteProtocol: --remote-write.protocol and the file's
// protobuf_message (Prometheus' name for it) choose the message; the flag
// wins over the file, and anything else is refused naming the setting.
func TestRemoteWriteProtocol(t *testing.T) {
	// 2.0 by default: start times need it, and a 1.0 receiver makes the
	// sender fall back.
	if got := mustParse(t).RemoteWrite.Protocol; got != remotewrite.Protocol2 {
		t.Errorf("default protocol %v, want 2", got)
	}
	if got := mustParse(t, "--remote-write.protocol=2").RemoteWrite.Protocol; got != remotewrite.Protocol2 {
		t.Errorf("--remote-write.protocol=2: %v", got)
	}
	if p := parseArgs(t, "--remote-write.protocol=3"); p.parseErr == nil || !strings.Contains(p.parseErr.Error(), "remote-write.protocol") {
		t.Errorf("--remote-write.protocol=3: %v, want an error naming the flag", p.parseErr)
	}
	file := func(msg string) string {
		return writeConfigFile(t, "remote_write:\n  - url: http://prometheus:9090/api/v1/write\n    protobuf_message: "+msg+"\n")
	}
	v2 := file("io.prometheus.write.v2.Request")
	if got := mustParse(t, "--config.file="+v2).RemoteWrite.Protocol; got != remotewrite.Protocol2 {
		t.Errorf("protobuf_message v2: %v", got)
	}
	if got := mustParse(t, "--config.file="+v2, "--remote-write.protocol=1").RemoteWrite.Protocol; got != remotewrite.Protocol1 {
		t.Errorf("the flag must win over the file: %v", got)
	}
	if got := mustParse(t, "--config.file="+file("prometheus.WriteRequest")).RemoteWrite.Protocol; got != remotewrite.Protocol1 {
		t.Errorf("protobuf_message v1: %v", got)
	}
	if p := parseArgs(t, "--config.file="+file("io.prometheus.write.v3.Request")); p.finishErr == nil || !strings.Contains(p.finishErr.Error(), "protobuf_message") {
		t.Errorf("unknown protobuf_message: %v, want an error naming it", p.finishErr)
	}
}
