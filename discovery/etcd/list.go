package etcd

import (
	"context"
	"sort"
	"strings"

	"github.com/sluicerpc/sluice/discovery"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// List reads every registered instance under prefix (DefaultPrefix when
// empty), by service; instances are sorted by Addr. Keys whose value does
// not decode are skipped. The control plane's admin API uses it.
func List(ctx context.Context, cli *clientv3.Client, prefix string) (map[string][]discovery.Instance, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string][]discovery.Instance{}
	for _, kv := range resp.Kvs {
		service, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if !ok || service == "" {
			continue
		}
		in, err := decode(prefix, service, kv.Key, kv.Value)
		if err != nil {
			continue
		}
		out[service] = append(out[service], in)
	}
	for _, ins := range out {
		sort.Slice(ins, func(i, j int) bool { return ins[i].Addr < ins[j].Addr })
	}
	return out, nil
}
