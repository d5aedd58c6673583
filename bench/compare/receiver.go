package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// probeSample is one sample of ferry_bench_probe as stored by a receiver.
type probeSample struct {
	ts    int64 // ms
	value float64
}

var (
	valuesRE     = regexp.MustCompile(`"values":\[([^\]]*)\]`)
	timestampsRE = regexp.MustCompile(`"timestamps":\[([^\]]*)\]`)
)

// exportProbe reads every sample of ferry_bench_probe since start from a
// VictoriaMetrics single node (/api/v1/export, JSON lines). The lines are
// cut with regular expressions rather than encoding/json because
// VictoriaMetrics may write staleness markers as bare NaN.
func exportProbe(vmURL string, start time.Time) ([]probeSample, error) {
	q := url.Values{}
	q.Set("match[]", "ferry_bench_probe")
	q.Set("start", strconv.FormatInt(start.Unix()-60, 10))
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(vmURL + "/api/v1/export?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("export: %s", resp.Status)
	}
	var out []probeSample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		vm := valuesRE.FindStringSubmatch(line)
		tm := timestampsRE.FindStringSubmatch(line)
		if vm == nil || tm == nil {
			continue
		}
		vs := strings.Split(vm[1], ",")
		ts := strings.Split(tm[1], ",")
		if len(vs) != len(ts) {
			return nil, fmt.Errorf("export: %d values, %d timestamps", len(vs), len(ts))
		}
		for i := range vs {
			v, err := strconv.ParseFloat(strings.Trim(vs[i], `" `), 64)
			if err != nil {
				v = math.NaN()
			}
			t, err := strconv.ParseInt(strings.TrimSpace(ts[i]), 10, 64)
			if err != nil {
				continue
			}
			out = append(out, probeSample{t, v})
		}
	}
	return out, sc.Err()
}

// completeness compares the probe values served to an agent with what its
// receiver holds: how many of them arrived, and how many stored samples
// have a value that does not match their timestamp (more than 2 s apart).
type completenessResult struct {
	Served, Arrived, Wrong int
}

func (c completenessResult) pct() float64 {
	if c.Served == 0 {
		return math.NaN()
	}
	return 100 * float64(c.Arrived) / float64(c.Served)
}

func completeness(served []int64, got []probeSample) completenessResult {
	want := map[int64]bool{}
	for _, v := range served {
		want[v] = true
	}
	have := map[int64]bool{}
	wrong := 0
	for _, s := range got {
		if math.IsNaN(s.value) || !want[int64(s.value)] {
			continue
		}
		if math.Abs(s.value-float64(s.ts)/1000) > 2 {
			wrong++
			continue
		}
		have[int64(s.value)] = true
	}
	return completenessResult{Served: len(want), Arrived: len(have), Wrong: wrong}
}
