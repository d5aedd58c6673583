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
// had, so that only the series it no longer has are ended.
func (a *Agent) reload(ctx context.Context, next config.Config, stopSources, stopSender func()) (func(), func()) {
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

	sources, err := a.buildSources(next)
	if err != nil {
		a.log.Error("reload refused; the running configuration stays", "err", err)
		return stopSources, stopSender
	}
	senderChanged := !reflect.DeepEqual(next.RemoteWrite, cur.RemoteWrite)
	sender := a.sender
	if senderChanged {
		if sender, err = newSender(next, a.buf, a.log); err != nil {
			a.log.Error("reload refused; the running configuration stays", "err", err)
			return stopSources, stopSender
		}
	}

	stopSources()
	a.mu.Lock()
	old := a.sources
	a.cfg, a.sources = next, sources
	if senderChanged {
		a.sender = sender
	}
	a.mu.Unlock()
	byName := map[string]*source{}
	for _, s := range old {
		byName[s.name] = s
	}
	for _, s := range sources {
		if prev, ok := byName[s.name]; ok {
			s.series = prev.series
			delete(byName, s.name)
		}
	}
	for _, gone := range byName {
		a.markAllStale(gone)
	}
	stopSources = a.runSources(ctx, sources)
	if senderChanged {
		stopSender()
		stopSender = a.runSender(sender)
	}
	a.log.Info("configuration reloaded", "sources", len(sources), "removed", len(byName), "remote_write_restarted", senderChanged)
	return stopSources, stopSender
}
