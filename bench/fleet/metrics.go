package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var httpc = &http.Client{Timeout: 10 * time.Second}

// exposition is a scraped /metrics page: one line per sample, "name{labels}"
// to value.
type exposition map[string]float64

func scrapeMetrics(ctx context.Context, addr string) (exposition, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: %s", addr, resp.Status)
	}
	out := exposition{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		key, val := line[:i], line[i+1:]
		// A timestamp after the value: take the value before it.
		if j := strings.LastIndexByte(key, ' '); j >= 0 && !strings.Contains(key[j:], "}") {
			key, val = key[:j], key[j+1:]
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		out[key] = v
	}
	return out, sc.Err()
}

// sum adds the samples of metric name whose labels contain every one of
// want (`code="429"` and the like).
func (e exposition) sum(name string, want ...string) float64 {
	var total float64
	for k, v := range e {
		if !strings.HasPrefix(k, name) || len(k) > len(name) && k[len(name)] != '{' {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(k[len(name):], w) {
				ok = false
				break
			}
		}
		if ok && !math.IsNaN(v) {
			total += v
		}
	}
	return total
}

// promSample is one sample of a query answer.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"` // matrix
	Value  [2]any            `json:"value"`  // vector
}

// instantQuery runs an instant query through Thanos Query, deduplicated
// over the receivers' replica label, and with partial answers refused.
func instantQuery(ctx context.Context, queryAddr, q string, at time.Time) ([]promSeries, error) {
	v := url.Values{}
	v.Set("query", q)
	v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	v.Set("dedup", "true")
	v.Set("partial_response", "false")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+queryAddr+"/api/v1/query", strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("query %q: %v: %.200s", q, err, body)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, ans.Error)
	}
	return ans.Data.Result, nil
}

// point reads a [time, "value"] pair.
func point(p [2]any) (ms int64, v float64, err error) {
	t, ok := p[0].(float64)
	s, ok2 := p[1].(string)
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("bad sample %v", p)
	}
	v, err = strconv.ParseFloat(s, 64)
	return int64(math.Round(t * 1000)), v, err
}
