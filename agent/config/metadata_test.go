package config

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-agent/ferry/agent/remotewrite"
)

// TestMetadataConfig: metadata is sent by default, every minute, as
// Prometheus' metadata_config has it; the file's metadata_config and the
// flags change it, the flags winning; negative values are refused.
func TestMetadataConfig(t *testing.T) {
	want := remotewrite.MetadataConfig{Send: true, SendInterval: time.Minute, MaxSamplesPerSend: 2000}
	if got := mustParse(t).RemoteWrite.Metadata; got != want {
		t.Errorf("default %+v, want %+v", got, want)
	}
	file := writeConfigFile(t, "remote_write:\n  - url: http://prometheus:9090/api/v1/write\n    metadata_config:\n      send: false\n      send_interval: 5m\n      max_samples_per_send: 100\n")
	want = remotewrite.MetadataConfig{Send: false, SendInterval: 5 * time.Minute, MaxSamplesPerSend: 100}
	if got := mustParse(t, "--config.file="+file).RemoteWrite.Metadata; got != want {
		t.Errorf("from the file %+v, want %+v", got, want)
	}
	want = remotewrite.MetadataConfig{Send: true, SendInterval: 30 * time.Second, MaxSamplesPerSend: 100}
	if got := mustParse(t, "--config.file="+file, "--remote-write.metadata.send", "--remote-write.metadata.send-interval=30s").RemoteWrite.Metadata; got != want {
		t.Errorf("flags over the file %+v, want %+v", got, want)
	}
	bad := writeConfigFile(t, "remote_write:\n  - url: http://prometheus:9090/api/v1/write\n    metadata_config: {max_samples_per_send: -1}\n")
	if p := parseArgs(t, "--config.file="+bad); p.finishErr == nil || !strings.Contains(p.finishErr.Error(), "metadata_config") {
		t.Errorf("negative max_samples_per_send: %v, want an error naming metadata_config", p.finishErr)
	}
}
