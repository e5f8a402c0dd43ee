// pxkvdb drives Portworx's own KVDB library (github.com/portworx/kvdb) so that kvdr's tests can make
// PX dumps the way a Portworx node does and read a restored cluster back the way Portworx sees it:
//
//	pxkvdb put       --kvdb etcd:http://127.0.0.1:2379 --domain pwx/<cluster>/ < pairs.json
//	pxkvdb dump      --kvdb consul:http://127.0.0.1:8500 --domain pwx/<cluster>/ --out pwx_kvdb_<time>.dump
//	pxkvdb enumerate --kvdb … --domain … [--prefix p]
//
// put reads a JSON array of operations ({"Key", "Value" (base64, as Go encodes []byte), "Op": "put" |
// "create" | "delete", "TTL" (seconds)}) and prints the library's KVPairs for them; dump writes the
// library's Serialize(); enumerate prints its Enumerate(prefix), which is what Serialize() marshals.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portworx/kvdb"
	"github.com/portworx/kvdb/consul"
	etcdv3 "github.com/portworx/kvdb/etcd/v3"
	"github.com/sirupsen/logrus"
)

// op is one write that put applies through the library.
type op struct {
	Key   string
	Value []byte
	Op    string
	TTL   uint64
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: pxkvdb put|dump|enumerate --kvdb <etcd:URL|consul:URL> --domain <pwx/cluster/> [--out file] [--prefix p]"))
	}
	command := os.Args[1]
	flags := flag.NewFlagSet(command, flag.ContinueOnError)
	endpoint := flags.String("kvdb", "", "etcd:http://host:2379 or consul:http://host:8500 (comma-separated URLs allowed)")
	domain := flags.String("domain", "", "the library's domain, e.g. pwx/<cluster-id>/")
	out := flags.String("out", "", "dump: the file to write")
	prefix := flags.String("prefix", "", "enumerate: the prefix below the domain")
	if err := flags.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	// The library logs through logrus; keep stdout for results and stderr quiet unless it matters.
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)

	kv, err := open(*endpoint, *domain)
	if err != nil {
		fail(err)
	}
	switch command {
	case "put":
		err = put(kv, os.Stdin, os.Stdout)
	case "dump":
		err = dump(kv, *out)
	case "enumerate":
		err = enumerate(kv, *prefix, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: use put, dump or enumerate", command)
	}
	if err != nil {
		fail(err)
	}
}

// open builds the client as Portworx does: kvdb.New with the backend's registered name, the domain,
// the machine URLs and (here, empty) options.
func open(endpoint, domain string) (kvdb.Kvdb, error) {
	scheme, urls, ok := strings.Cut(endpoint, ":")
	if !ok || urls == "" {
		return nil, fmt.Errorf("--kvdb %q: want etcd:<url> or consul:<url>", endpoint)
	}
	var name string
	switch scheme {
	case "etcd":
		name = etcdv3.Name
	case "consul":
		name = consul.Name
	default:
		return nil, fmt.Errorf("--kvdb %q: backend %q is neither etcd nor consul", endpoint, scheme)
	}
	// A fatal library error (a lost lock, say) must end the run instead of going unnoticed.
	onFatal := func(err error, format string, args ...interface{}) {
		fail(fmt.Errorf("%s: %v", fmt.Sprintf(format, args...), err))
	}
	return kvdb.New(name, domain, strings.Split(urls, ","), map[string]string{}, onFatal)
}

func put(kv kvdb.Kvdb, in io.Reader, out io.Writer) error {
	var ops []op
	if err := json.NewDecoder(in).Decode(&ops); err != nil {
		return fmt.Errorf("reading operations from stdin: %w", err)
	}
	results := kvdb.KVPairs{}
	for _, o := range ops {
		var kvp *kvdb.KVPair
		var err error
		// []byte values are stored as they are (the library's common.ToBytes copies them).
		value := o.Value
		if value == nil {
			value = []byte{}
		}
		switch o.Op {
		case "", "put":
			kvp, err = kv.Put(o.Key, value, o.TTL)
		case "create":
			kvp, err = kv.Create(o.Key, value, o.TTL)
		case "delete":
			kvp, err = kv.Delete(o.Key)
		default:
			err = fmt.Errorf("unknown op %q", o.Op)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", opName(o.Op), o.Key, err)
		}
		results = append(results, kvp)
	}
	return json.NewEncoder(out).Encode(results)
}

func opName(name string) string {
	if name == "" {
		return "put"
	}
	return name
}

// dump writes what a Portworx node writes to /var/cores/kvdb_dump/pwx_kvdb_<time>.dump.
func dump(kv kvdb.Kvdb, path string) error {
	if path == "" {
		return errors.New("dump needs --out <file>")
	}
	data, err := kv.Serialize()
	if err != nil {
		return fmt.Errorf("Serialize: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}

func enumerate(kv kvdb.Kvdb, prefix string, out io.Writer) error {
	kvps, err := kv.Enumerate(prefix)
	if err != nil {
		return fmt.Errorf("Enumerate(%q): %w", prefix, err)
	}
	data, err := json.Marshal(kvps)
	if err != nil {
		return err
	}
	_, err = out.Write(append(data, '\n'))
	return err
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pxkvdb: %v\n", err)
	os.Exit(1)
}
