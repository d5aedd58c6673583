package agent

import (
	"context"
	"reflect"

	"github.com/ferry-agent/ferry/agent/config"
)

// reload replaces the running sources, and the sender if its settings
// changed, with those of next. The buffer stays open throughout: nothing
// collected or buffered is lost. A source that goes away ends its series
// with staleness markers; one that stays keeps its memory of the series it
// had, so that only the series it no longer has are ended; a scrape target
// that did not change runs on undisturbed. The files of file_sd_configs are
// read again. It returns the stop of the sender running afterwards.
func (a *Agent) reload(ctx context.Context, next config.Config, stopSender func()) func() {
	a.mu.RLock()
	cur := a.cfg
	a.mu.RUnlock()
	for _, fixed := range []struct {
		flag    string
		changed bool
	}{
		{"--storage.path", next.StoragePath != cur.StoragePath},
		{"--storage.max-size", next.StorageMaxSize != cur.StorageMaxSize},
		{"--storage.sync-interval", next.SyncInterval != cur.SyncInterval},
		{"--storage.thin", next.StorageThin != cur.StorageThin},
		{"--web.listen-address", next.ListenAddress != cur.ListenAddress},
		{"--log.level", next.LogLevel != cur.LogLevel},
		{"--clock.require-sync", next.ClockRequireSync != cur.ClockRequireSync},
	} {
		if fixed.changed {
			a.log.Warn("reload: this setting changes at the next restart only", "setting", fixed.flag)
		}
	}
	next.StoragePath, next.StorageMaxSize, next.SyncInterval, next.StorageThin = cur.StoragePath, cur.StorageMaxSize, cur.SyncInterval, cur.StorageThin
	next.ListenAddress, next.LogLevel, next.ClockRequireSync = cur.ListenAddress, cur.LogLevel, cur.ClockRequireSync

	disc := startDiscovery(ctx, next.FileSD, a.log)
	sources, err := a.sourcesFor(next, disc)
	if err != nil {
		disc.close()
		a.log.Error("reload refused; the running configuration stays", "err", err)
		return stopSender
	}
	senderChanged := !reflect.DeepEqual(senderSettings(next), senderSettings(cur))
	sender := a.sender
	if senderChanged {
		if sender, err = newSenders(next, a.buf, a.log); err != nil {
			disc.close()
			a.log.Error("reload refused; the running configuration stays", "err", err)
			return stopSender
		}
	}

	a.disc.close()
	a.disc = disc
	a.mu.Lock()
	a.cfg = next
	if senderChanged {
		a.sender = sender
	}
	a.mu.Unlock()
	started, stopped := a.replaceSources(ctx, sources)
	if senderChanged {
		stopSender()
		stopSender = a.runSender(sender)
	}
	a.log.Info("configuration reloaded", "sources", len(sources), "restarted", started, "removed", stopped, "remote_write_restarted", senderChanged)
	return stopSender
}

// senderSettings are what the senders run with: each endpoint's settings,
// and its write relabeling where the sender applies it (with several
// endpoints; with one, the sources apply it as they append).
func senderSettings(cfg config.Config) []config.RemoteWrite {
	eps := cfg.Endpoints()
	if len(eps) == 1 {
		eps[0].WriteRelabel = nil
	}
	return eps
}
