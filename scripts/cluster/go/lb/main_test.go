package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func TestAdmitted(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		src    netip.Addr
		ranges []string
		want   bool
	}{
		{a("1.2.3.4"), nil, true},
		{a("1.2.3.4"), []string{}, true},
		{a("127.0.0.1"), []string{"127.0.0.0/8"}, true},
		{a("127.0.0.1"), []string{" 127.0.0.1/32 "}, true},
		{a("127.0.0.2"), []string{"127.0.0.1/32"}, false},
		{a("10.1.2.3"), []string{"192.168.0.0/16", "10.0.0.0/8"}, true},
		{a("10.1.2.3"), []string{"10.1.2.3"}, false},             // not a CIDR: fails closed
		{a("10.1.2.3"), []string{"garbage", "10.0.0.0/8"}, true}, // the valid entries still count
		{a("::ffff:10.1.2.3"), []string{"10.0.0.0/8"}, true},     // IPv4-mapped source
		{a("fd00::1"), []string{"fd00::/8"}, true},
		{a("fd00::1"), []string{"10.0.0.0/8"}, false},
		{a("10.0.0.1"), []string{"0.0.0.0/0"}, true},
	}
	for _, c := range cases {
		if got := admitted(c.src, c.ranges); got != c.want {
			t.Errorf("admitted(%s, %q) = %v, want %v", c.src, c.ranges, got, c.want)
		}
	}
}

func ep(addr string, ready, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
}

func slice(addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{AddressType: addrType, Ports: ports, Endpoints: eps}
}

func eport(name string, port int32, proto corev1.Protocol) discoveryv1.EndpointPort {
	p := discoveryv1.EndpointPort{Port: &port}
	if name != "" || port == 0 {
		p.Name = &name
	}
	if proto != "" {
		p.Protocol = &proto
	}
	return p
}

func TestBackends(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	http := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}
	eps := []*discoveryv1.EndpointSlice{
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{eport("metrics", 9090, ""), eport("http", 8080, corev1.ProtocolTCP)},
			ep("10.244.0.2", yes, nil),
			ep("10.244.0.1", nil, nil), // nil ready counts as ready
			ep("10.244.0.3", no, nil),
			ep("10.244.0.4", yes, yes), // terminating
			ep("10.244.0.5", nil, no),
			discoveryv1.Endpoint{}, // no addresses
		),
		// the named targetPort resolves to another number for these pods; 10.244.0.2 is duplicated
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{eport("http", 8081, "")},
			ep("10.244.1.1", yes, nil), ep("10.244.0.2", yes, nil)),
		slice(discoveryv1.AddressTypeIPv6, []discoveryv1.EndpointPort{eport("http", 8080, "")}, ep("fd00::1", yes, nil)),
		slice(discoveryv1.AddressTypeFQDN, []discoveryv1.EndpointPort{eport("http", 8080, "")}, ep("example.com", yes, nil)),
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{eport("http", 8080, corev1.ProtocolUDP)}, ep("10.244.2.1", yes, nil)),
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr("http")}}, ep("10.244.3.1", yes, nil)), // no port number
		slice(discoveryv1.AddressTypeIPv4, nil, ep("10.244.4.1", yes, nil)),
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{eport("http", 8080, "")},
			discoveryv1.Endpoint{Addresses: []string{"10.244.5.1", "10.244.5.2"}}), // only the first address counts
	}
	var got []string
	for _, b := range backends(http, eps) {
		got = append(got, b.String())
	}
	want := []string{"10.244.0.1:8080", "10.244.0.2:8080", "10.244.0.2:8081", "10.244.0.5:8080", "10.244.1.1:8081", "10.244.5.1:8080", "[fd00::1]:8080"}
	if !slices.Equal(got, want) {
		t.Errorf("backends(http) =\n %v\nwant\n %v", got, want)
	}

	// an unnamed Service port matches the slice's unnamed port (Name nil or "")
	unnamed := corev1.ServicePort{Port: 80}
	eps = []*discoveryv1.EndpointSlice{
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Port: ptr(int32(8080))}}, ep("10.0.0.1", nil, nil)),
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(int32(8080))}}, ep("10.0.0.2", nil, nil)),
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{eport("http", 8080, "")}, ep("10.0.0.3", nil, nil)),
	}
	got = nil
	for _, b := range backends(unnamed, eps) {
		got = append(got, b.String())
	}
	if want := []string{"10.0.0.1:8080", "10.0.0.2:8080"}; !slices.Equal(got, want) {
		t.Errorf("backends(unnamed) = %v, want %v", got, want)
	}
	if got := backends(http, nil); len(got) != 0 {
		t.Errorf("backends(no slices) = %v", got)
	}
}

func TestRotate(t *testing.T) {
	items := []string{"a", "b", "c"}
	var firsts []string
	for turn := range uint64(7) {
		r := rotate(items, turn)
		if len(r) != 3 {
			t.Fatalf("rotate(%d) = %v", turn, r)
		}
		firsts = append(firsts, strings.Join(r, ""))
	}
	if want := []string{"abc", "bca", "cab", "abc", "bca", "cab", "abc"}; !slices.Equal(firsts, want) {
		t.Errorf("rotations = %v, want %v", firsts, want)
	}
	if !slices.Equal(items, []string{"a", "b", "c"}) {
		t.Errorf("rotate modified its input: %v", items)
	}
	if r := rotate([]string(nil), 5); r != nil {
		t.Errorf("rotate(nil) = %v", r)
	}
	if r := rotate([]string{"x"}, ^uint64(0)); !slices.Equal(r, []string{"x"}) {
		t.Errorf("rotate(max) = %v", r)
	}
}

// echo serves at addr: it reads the request to EOF (so the client's half-close must arrive), answers
// "<name>:<request>" and closes.
func echo(t *testing.T, addr, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, _ := io.ReadAll(c)
				fmt.Fprintf(c, "%s:%s", name, req)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// call sends req from src (any if invalid) to addr, half-closes, and reads the answer to EOF.
func call(addr string, src netip.Addr, req string) (string, error) {
	d := net.Dialer{Timeout: time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(bufio.NewReader(c))
	return string(b), err
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func freePort(t *testing.T, host string) int32 {
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// TestForwarding runs the controller against a fake API server and real loopback sockets. It uses its own
// address range so as not to meet a real lb-standin.
func TestForwarding(t *testing.T) {
	backendPort := freePort(t, "127.0.20.1")
	echo(t, fmt.Sprintf("127.0.20.1:%d", backendPort), "one")
	echo(t, fmt.Sprintf("127.0.20.2:%d", backendPort), "two")
	// 127.0.20.3 is ready but refuses: connections must move on to the next endpoint

	svcPort := freePort(t, "127.0.97.1")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{
			{Name: "http", Port: svcPort, TargetPort: intstr.FromString("http")},
			{Name: "dns", Port: svcPort + 1, Protocol: corev1.ProtocolUDP},
		}},
	}
	other := &corev1.Service{ // another controller's: neither addressed nor forwarded
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr("example.com/lb"),
			Ports: []corev1.ServicePort{{Name: "http", Port: svcPort}}},
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &backendPort}},
		Endpoints: []discoveryv1.Endpoint{
			ep("127.0.20.1", ptr(true), nil), ep("127.0.20.2", nil, nil), ep("127.0.20.3", ptr(true), nil),
			ep("127.0.20.4", ptr(false), nil),
		},
	}
	client := fake.NewClientset(svc, other, es)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	alloc := &allocator{first: netip.MustParseAddr("127.0.97.1"), last: netip.MustParseAddr("127.0.97.9"), used: map[netip.Addr]string{}}
	go func() {
		done <- run(ctx, client, informers.NewSharedInformerFactory(client, 0), alloc, true, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	}()
	defer func() {
		cancel()
		<-done
	}()

	get := func(name string) *corev1.Service {
		s, err := client.CoreV1().Services("ns").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	update := func(mutate func(*corev1.Service)) {
		s := get("web")
		mutate(s)
		if _, err := client.CoreV1().Services("ns").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the address", func() bool { return len(get("web").Status.LoadBalancer.Ingress) == 1 })
	ip := get("web").Status.LoadBalancer.Ingress[0].IP
	if ip != "127.0.97.1" {
		t.Fatalf("ingress %s", ip)
	}
	if mode := get("web").Status.LoadBalancer.Ingress[0].IPMode; mode == nil || *mode != corev1.LoadBalancerIPModeProxy {
		t.Errorf("ipMode %v, want Proxy (kube-proxy must leave a proxy's addresses alone)", mode)
	}
	addr := fmt.Sprintf("%s:%d", ip, svcPort)
	eventually(t, "the listener", func() bool { _, err := call(addr, netip.Addr{}, "x"); return err == nil })

	// Round-robin over one, two and the refusing three (which falls through to one).
	var answers []string
	for i := range 6 {
		got, err := call(addr, netip.Addr{}, fmt.Sprint("req", i))
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, got)
	}
	t.Logf("answers: %v", answers)
	counts := map[string]int{}
	for i, a := range answers {
		name, req, _ := strings.Cut(a, ":")
		if req != fmt.Sprint("req", i) {
			t.Errorf("answer %q to req%d", a, i)
		}
		counts[name]++
	}
	if counts["one"] != 4 || counts["two"] != 2 {
		t.Errorf("distribution %v, want one:4 two:2 (three refuses and falls through to one)", counts)
	}
	if len(get("other").Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("other's Service got an address")
	}

	// A large request and answer survive the copy both ways.
	big := strings.Repeat("0123456789", 200_000)
	if got, err := call(addr, netip.Addr{}, big); err != nil || !strings.HasSuffix(got, ":"+big) {
		t.Errorf("big request: %d bytes back, %v", len(got), err)
	}

	// Source ranges: 127.0.30.0/24 admitted, anyone else refused (connection closed, nothing answered).
	update(func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"127.0.30.0/24"} })
	eventually(t, "the refusal", func() bool { got, _ := call(addr, netip.MustParseAddr("127.0.40.5"), "x"); return got == "" })
	if got, err := call(addr, netip.MustParseAddr("127.0.30.5"), "in"); err != nil || !strings.HasSuffix(got, ":in") {
		t.Errorf("admitted client got %q, %v", got, err)
	}
	if got, _ := call(addr, netip.Addr{}, "x"); got != "" {
		t.Errorf("127.0.0.1 admitted: %q", got)
	}
	update(func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = nil })

	// No ready endpoints: connections are closed.
	es.Endpoints = []discoveryv1.Endpoint{ep("127.0.20.1", ptr(false), nil), ep("127.0.20.2", ptr(true), ptr(true))}
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no endpoints", func() bool { got, err := call(addr, netip.Addr{}, "x"); return err == nil && got == "" })
	es.Endpoints = []discoveryv1.Endpoint{ep("127.0.20.2", nil, nil)}
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two only", func() bool { got, _ := call(addr, netip.Addr{}, "x"); return got == "two:x" })

	// The port moves: the old one closes, the new one forwards.
	newPort := freePort(t, ip)
	update(func(s *corev1.Service) { s.Spec.Ports[0].Port = newPort })
	newAddr := fmt.Sprintf("%s:%d", ip, newPort)
	eventually(t, "the new port", func() bool { got, _ := call(newAddr, netip.Addr{}, "x"); return got == "two:x" })
	if _, err := call(addr, netip.Addr{}, "x"); err == nil {
		t.Errorf("old port still open")
	}

	// The address moves (status rewritten by hand to another address of the range): re-listen there.
	s := get("web")
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "127.0.97.5"}}
	if _, err := client.CoreV1().Services("ns").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	movedAddr := fmt.Sprintf("127.0.97.5:%d", newPort)
	eventually(t, "the new address", func() bool { got, _ := call(movedAddr, netip.Addr{}, "x"); return got == "two:x" })
	if _, err := call(newAddr, netip.Addr{}, "x"); err == nil {
		t.Errorf("old address still open")
	}

	// No longer a LoadBalancer: listener closed and status cleared.
	update(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	eventually(t, "the listener to close", func() bool { _, err := call(movedAddr, netip.Addr{}, "x"); return err != nil })
	eventually(t, "the status to clear", func() bool { return len(get("web").Status.LoadBalancer.Ingress) == 0 })

	// A LoadBalancer again, then deleted.
	update(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
	eventually(t, "a fresh address", func() bool { return len(get("web").Status.LoadBalancer.Ingress) == 1 })
	again := fmt.Sprintf("%s:%d", get("web").Status.LoadBalancer.Ingress[0].IP, newPort)
	eventually(t, "forwarding again", func() bool { got, _ := call(again, netip.Addr{}, "x"); return got == "two:x" })
	if err := client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the listener to close on delete", func() bool { _, err := call(again, netip.Addr{}, "x"); return err != nil })
}

// TestNoForward: with forwarding off, addresses are still handed out but nothing listens.
func TestNoForward(t *testing.T) {
	port := freePort(t, "127.0.98.1")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: port}}},
	}
	client := fake.NewClientset(svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	alloc := &allocator{first: netip.MustParseAddr("127.0.98.1"), last: netip.MustParseAddr("127.0.98.1"), used: map[netip.Addr]string{}}
	go func() { done <- run(ctx, client, informers.NewSharedInformerFactory(client, 0), alloc, false, nil) }()
	defer func() {
		cancel()
		<-done
	}()
	eventually(t, "the address", func() bool {
		s, _ := client.CoreV1().Services("ns").Get(ctx, "web", metav1.GetOptions{})
		return s != nil && len(s.Status.LoadBalancer.Ingress) == 1
	})
	time.Sleep(200 * time.Millisecond)
	if _, err := call(fmt.Sprintf("127.0.98.1:%d", port), netip.Addr{}, "x"); err == nil {
		t.Errorf("listening with --forward=false")
	}
}

// TestDialFirst: endpoints that refuse are skipped for the next. (A 10.244.x.x address would be the
// realistic dead endpoint, but this sandbox's egress proxy accepts every outbound connection.)
func TestDialFirst(t *testing.T) {
	ln := echo(t, "127.0.20.9:0", "live")
	live := netip.MustParseAddrPort(ln.Addr().String())
	start := time.Now()
	conn, errs := dialFirst(context.Background(), []netip.AddrPort{netip.MustParseAddrPort("127.0.20.7:1"), netip.MustParseAddrPort("127.0.20.8:1"), live})
	took := time.Since(start)
	t.Logf("took %v, errors %q", took, errs)
	if conn == nil || errs != nil {
		t.Fatalf("conn %v, errors %q", conn, errs)
	}
	conn.Close()
	if took > dialTimeout+500*time.Millisecond {
		t.Errorf("took %v", took)
	}
	start = time.Now()
	conn, errs = dialFirst(context.Background(), []netip.AddrPort{netip.MustParseAddrPort("127.0.20.7:1"), netip.MustParseAddrPort("127.0.20.8:1")})
	t.Logf("dead only: took %v, errors %q", time.Since(start), errs)
	if conn != nil || len(errs) != 2 {
		t.Errorf("dead only: %v %q", conn, errs)
	}
}

// TestAPIServerRelay: the relay waits for its address to be free to listen on (as for the bridge's address to
// exist), then relays clients inside the allowed prefixes and closes on the others without dialling.
func TestAPIServerRelay(t *testing.T) {
	target := echo(t, "127.0.20.11:0", "apiserver")
	blocker, err := net.Listen("tcp", "127.0.21.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := netip.MustParseAddrPort(blocker.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		relayAPIServer(ctx, listen, netip.MustParseAddrPort(target.Addr().String()),
			[]netip.Prefix{netip.MustParsePrefix("127.0.22.0/24")})
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(700 * time.Millisecond) // at least one refused attempt
	blocker.Close()

	var got string
	eventually(t, "the relay", func() bool {
		got, err = call(listen.String(), netip.MustParseAddr("127.0.22.7"), "get")
		return err == nil && got != ""
	})
	if got != "apiserver:get" {
		t.Errorf("allowed client got %q", got)
	}
	if got, err := call(listen.String(), netip.MustParseAddr("127.0.23.7"), "get"); got != "" {
		t.Errorf("a client outside the allowed prefixes got %q (%v)", got, err)
	}
}

func TestParseRelay(t *testing.T) {
	l, tg, err := parseRelay("10.89.0.1:16443=127.0.0.1:16443")
	if err != nil || l.String() != "10.89.0.1:16443" || tg.String() != "127.0.0.1:16443" {
		t.Errorf("got %v %v %v", l, tg, err)
	}
	for _, bad := range []string{"10.89.0.1:16443", "10.89.0.1=127.0.0.1:1", "x:1=127.0.0.1:1"} {
		if _, _, err := parseRelay(bad); err == nil {
			t.Errorf("parseRelay(%q): no error", bad)
		}
	}
}
