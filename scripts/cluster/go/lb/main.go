// lb-standin plays the cloud load balancer for the local cluster's LoadBalancer Services. It gives every one
// an address from 127.0.0.0/8 in status.loadBalancer.ingress, as a cloud's service controller (or `minikube
// tunnel`) would, so that clients awaiting the address (Pulumi) complete for real; and, as an IP-mode cloud
// load balancer does, it forwards TCP connections to that address and a Service port straight to the
// Service's ready endpoints (from its EndpointSlices), round-robin, admitting only the clients that
// spec.loadBalancerSourceRanges allows.
//
// Addresses come from --range (default 127.0.10.1-127.0.10.254), are stable while a Service exists, and are
// released when it is deleted or stops being a LoadBalancer. Services naming another loadBalancerClass are
// left to their controller. Linux routes all of 127.0.0.0/8 to lo, so listening needs no address set up;
// ports below net.ipv4.ip_unprivileged_port_start need root or CAP_NET_BIND_SERVICE. An endpoint that does
// not answer within 2s (kwok's fake pods have addresses nobody serves) is skipped for the next; with no ready
// endpoint answering, the client's connection is closed. Only endpoints inside --endpoints are dialled (the real
// node's pod subnet): kwok's fake pods have addresses of no machine here, and traffic must not leave this one.
// UDP and SCTP ports are not forwarded, and --forward=false turns forwarding off, leaving only the status.
// The addresses are published with ipMode Proxy: this is a proxy (it ends the client's connection and dials the
// pods), so kube-proxy leaves them alone rather than rewriting the host's own connections to them.
//
// --apiserver LISTEN=TARGET also relays TCP from LISTEN (the real node's bridge address and the API server's
// port) to TARGET (the API server on loopback), admitting only clients inside --endpoints: the endpoint the
// `kubernetes` Service gets, through which the node's pods reach the API server as on any cluster, and nothing
// else does. It listens as soon as LISTEN's address exists (the bridge comes after this program starts).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// dialTimeout bounds each attempt on an endpoint, so that a client stuck behind addresses nobody serves
// reaches a live endpoint (or is let go) soon.
const dialTimeout = 2 * time.Second

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	addrRange := flag.String("range", "127.0.10.1-127.0.10.254", "first-last addresses to hand out (loopback only)")
	forward := flag.Bool("forward", true, "forward TCP connections to the Services' addresses to their ready endpoints")
	endpoints := flag.String("endpoints", "10.89.0.0/24", "comma-separated CIDRs of the endpoints that may be dialled")
	apiserver := flag.String("apiserver", "", "LISTEN=TARGET: relay TCP from LISTEN to TARGET for clients in --endpoints")
	flag.Parse()
	var dialable []netip.Prefix
	for _, cidr := range strings.Split(*endpoints, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			log.Fatalf("--endpoints %q: %v", *endpoints, err)
		}
		dialable = append(dialable, p)
	}
	var first, last netip.Addr
	a, b, _ := strings.Cut(*addrRange, "-")
	first, err := netip.ParseAddr(a)
	if err == nil {
		last, err = netip.ParseAddr(b)
	}
	if err != nil || !first.IsValid() || !last.IsValid() || !first.IsLoopback() || !last.IsLoopback() || last.Less(first) {
		log.Fatalf("--range %q: want two loopback addresses first-last", *addrRange)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *apiserver != "" {
		listen, target, err := parseRelay(*apiserver)
		if err != nil {
			log.Fatalf("--apiserver %q: %v", *apiserver, err)
		}
		go relayAPIServer(ctx, listen, target, dialable)
	}

	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	alloc := &allocator{first: first, last: last, used: map[netip.Addr]string{}}
	if err := run(ctx, client, factory, alloc, *forward, dialable); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends. Split from main so that a test can drive it with a fake clientset.
func run(ctx context.Context, client kubernetes.Interface, factory informers.SharedInformerFactory, alloc *allocator,
	forward bool, dialable []netip.Prefix) error {
	services := factory.Core().V1().Services()
	c := &controller{client: client, alloc: alloc}
	if forward {
		endpointSlices := factory.Discovery().V1().EndpointSlices()
		endpointSlices.Informer() // registers it with the factory before Start; connections read its cache
		c.fwd = &forwarder{ctx: ctx, services: services.Lister(), slices: endpointSlices.Lister(), dialable: dialable,
			listeners: map[string]map[int32]*listener{}}
	}
	_, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.sync(ctx, obj.(*corev1.Service)) },
		UpdateFunc: func(_, obj any) { c.sync(ctx, obj.(*corev1.Service)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if svc, ok := obj.(*corev1.Service); ok {
				c.forget(svc.Namespace + "/" + svc.Name)
			}
		},
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	what := "and forwarding their TCP ports"
	if !forward {
		what = "(not forwarding)"
	}
	log.Printf("handing out %s-%s to LoadBalancer Services %s", alloc.first, alloc.last, what)
	<-ctx.Done()
	factory.Shutdown()
	if c.fwd != nil {
		c.fwd.closeAll()
	}
	return nil
}

// ---------------------------------------------------------------------------------------------------
// Addresses and status

type allocator struct {
	mu    sync.Mutex
	first netip.Addr
	last  netip.Addr
	used  map[netip.Addr]string // address -> namespace/name
}

func (a *allocator) claim(key string, want netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if owner, ok := a.used[want]; ok && owner != key {
		return false
	}
	a.used[want] = key
	return true
}

func (a *allocator) next(key string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr := a.first; addr.Compare(a.last) <= 0; addr = addr.Next() {
		if _, ok := a.used[addr]; !ok {
			a.used[addr] = key
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s-%s", a.first, a.last)
}

func (a *allocator) release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr, owner := range a.used {
		if owner == key {
			delete(a.used, addr)
		}
	}
}

// owns says whether addr is key's and from the range: status may name an address another Service holds, or
// (written by hand) one off loopback, and neither may be listened on.
func (a *allocator) owns(key string, addr netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used[addr] == key && a.first.Compare(addr) <= 0 && addr.Compare(a.last) <= 0
}

func isOurs(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == "")
}

// controller turns Service events into status writes and, unless fwd is nil, listeners.
type controller struct {
	client kubernetes.Interface
	alloc  *allocator
	fwd    *forwarder
}

func (c *controller) sync(ctx context.Context, svc *corev1.Service) {
	key := svc.Namespace + "/" + svc.Name
	c.syncStatus(ctx, key, svc)
	if c.fwd == nil {
		return
	}
	// Listen only on the address published in this version of the Service: a fresh assignment is written
	// first, and its update event (moments later) opens the listeners.
	var addr netip.Addr
	if ing := svc.Status.LoadBalancer.Ingress; isOurs(svc) && len(ing) == 1 {
		if a, err := netip.ParseAddr(ing[0].IP); err == nil && c.alloc.owns(key, a) {
			addr = a
		}
	}
	c.fwd.set(key, addr, tcpPorts(svc))
}

func (c *controller) forget(key string) {
	c.alloc.release(key)
	if c.fwd != nil {
		c.fwd.set(key, netip.Addr{}, nil)
	}
}

func (c *controller) syncStatus(ctx context.Context, key string, svc *corev1.Service) {
	if !isOurs(svc) {
		c.alloc.release(key)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0 {
			updateStatus(ctx, c.client, svc, nil)
		}
		return
	}
	if ing := svc.Status.LoadBalancer.Ingress; len(ing) == 1 {
		if addr, err := netip.ParseAddr(ing[0].IP); err == nil && c.alloc.claim(key, addr) {
			if ptrOr(ing[0].IPMode, "") != corev1.LoadBalancerIPModeProxy {
				updateStatus(ctx, c.client, svc, []corev1.LoadBalancerIngress{ingress(addr)})
			}
			return // already has its address (also after a restart of this controller)
		}
	}
	addr, err := c.alloc.next(key)
	if err != nil {
		log.Printf("%s: %v", key, err)
		return
	}
	updateStatus(ctx, c.client, svc, []corev1.LoadBalancerIngress{ingress(addr)})
}

func ingress(addr netip.Addr) corev1.LoadBalancerIngress {
	return corev1.LoadBalancerIngress{IP: addr.String(), IPMode: ptr(corev1.LoadBalancerIPModeProxy)}
}

func updateStatus(ctx context.Context, client kubernetes.Interface, svc *corev1.Service, ingress []corev1.LoadBalancerIngress) {
	updated := svc.DeepCopy()
	updated.Status.LoadBalancer.Ingress = ingress
	if _, err := client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		log.Printf("%s/%s: status update: %v", svc.Namespace, svc.Name, err) // the informer's resync retries
		return
	}
	ips := make([]string, 0, len(ingress))
	for _, entry := range ingress {
		ips = append(ips, entry.IP)
	}
	log.Printf("%s/%s: ingress %v", svc.Namespace, svc.Name, ips)
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------------------------------
// Forwarding

// forwarder keeps one listener per TCP port of each Service at the Service's address. A connection reads the
// Service and its EndpointSlices from the informers' caches when it arrives, so changes to endpoints, source
// ranges or port names apply without re-listening.
type forwarder struct {
	ctx       context.Context
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	dialable  []netip.Prefix // endpoints elsewhere are never dialled
	mu        sync.Mutex
	listeners map[string]map[int32]*listener // namespace/name -> service port -> listener
}

type listener struct {
	net.Listener
	namespace, name string
	port            int32 // the Service port, which identifies it in spec.ports
	addr            netip.AddrPort
	turn            atomic.Uint64 // round-robin position
}

func tcpPorts(svc *corev1.Service) []int32 {
	var ports []int32
	for _, p := range svc.Spec.Ports {
		if isTCP(p.Protocol) {
			ports = append(ports, p.Port)
		}
	}
	return ports
}

func isTCP(p corev1.Protocol) bool { return p == "" || p == corev1.ProtocolTCP }

// set makes key's listeners those of ports at addr (none if addr is invalid). A port that fails to listen is
// retried at the Service's next event or resync.
func (f *forwarder) set(key string, addr netip.Addr, ports []int32) {
	if !addr.IsValid() {
		ports = nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	have := f.listeners[key]
	for port, l := range have {
		if !slices.Contains(ports, port) || l.addr.Addr() != addr {
			l.Close()
			delete(have, port)
			log.Printf("%s: stopped forwarding %s", key, l.addr)
		}
	}
	for _, port := range ports {
		if _, ok := have[port]; ok {
			continue
		}
		l, err := f.listen(key, netip.AddrPortFrom(addr, uint16(port)), port)
		if err != nil {
			if errors.Is(err, syscall.EACCES) {
				err = fmt.Errorf("%w (a port below net.ipv4.ip_unprivileged_port_start needs root or CAP_NET_BIND_SERVICE)", err)
			}
			log.Printf("%s: %v", key, err)
			continue
		}
		if have == nil {
			have = map[int32]*listener{}
			f.listeners[key] = have
		}
		have[port] = l
		log.Printf("%s: forwarding %s to the ready endpoints", key, l.addr)
	}
	if len(have) == 0 {
		delete(f.listeners, key)
	}
}

func (f *forwarder) listen(key string, at netip.AddrPort, port int32) (*listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(f.ctx, "tcp", at.String())
	if err != nil {
		return nil, err
	}
	namespace, name, _ := strings.Cut(key, "/")
	l := &listener{Listener: ln, namespace: namespace, name: name, port: port, addr: at}
	go f.serve(l)
	return l, nil
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ports := range f.listeners {
		for _, l := range ports {
			l.Close()
		}
	}
	clear(f.listeners)
}

func (f *forwarder) serve(l *listener) {
	for {
		conn, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: wait for some to be freed rather than spin
			log.Printf("%s/%s %s: accept: %v", l.namespace, l.name, l.addr, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go f.relay(l, conn.(*net.TCPConn))
	}
}

// relay connects client to an endpoint and copies between them. Every way of giving up logs one line, so a
// connection logs at most once.
func (f *forwarder) relay(l *listener, client *net.TCPConn) {
	defer client.Close()
	from := client.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
	logf := func(format string, args ...any) {
		log.Printf("%s/%s %s from %s: %s", l.namespace, l.name, l.addr, from, fmt.Sprintf(format, args...))
	}
	// The Service may have changed since the listener opened; its current version decides, as it would at
	// a cloud load balancer once reconfigured.
	svc, err := f.services.Services(l.namespace).Get(l.name)
	if err != nil {
		logf("closed: %v", err)
		return
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == l.port && isTCP(p.Protocol) })
	if i < 0 || !isOurs(svc) {
		logf("closed: no longer a LoadBalancer port of the Service")
		return
	}
	if !admitted(from, svc.Spec.LoadBalancerSourceRanges) {
		logf("refused: not in loadBalancerSourceRanges %v", svc.Spec.LoadBalancerSourceRanges)
		return
	}
	eps, err := f.slices.EndpointSlices(l.namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: l.name}))
	if err != nil {
		logf("closed: %v", err)
		return
	}
	targets := slices.DeleteFunc(backends(svc.Spec.Ports[i], eps), func(t netip.AddrPort) bool {
		return !slices.ContainsFunc(f.dialable, func(p netip.Prefix) bool { return p.Contains(t.Addr()) })
	})
	if len(targets) == 0 {
		logf("closed: no ready endpoints in %v", f.dialable)
		return
	}
	upstream, errs := dialFirst(f.ctx, rotate(targets, l.turn.Add(1)-1))
	if upstream == nil {
		logf("closed: no endpoint answered: %s", strings.Join(errs, "; "))
		return
	}
	defer upstream.Close()
	pipe(client, upstream)
}

// dialFirst connects to the first of targets that answers, reporting why the others did not.
func dialFirst(ctx context.Context, targets []netip.AddrPort) (*net.TCPConn, []string) {
	dialer := &net.Dialer{Timeout: dialTimeout}
	var errs []string
	for _, t := range targets {
		conn, err := dialer.DialContext(ctx, "tcp", t.String())
		if err == nil {
			return conn.(*net.TCPConn), nil
		}
		errs = append(errs, err.Error())
	}
	return nil, errs
}

// pipe copies both ways until both sides have finished sending. Passing each half-close on keeps
// request-then-EOF protocols working; an error either way closes both, or the other direction could wait
// forever.
func pipe(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	oneWay := func(dst, src *net.TCPConn) {
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		dst.CloseWrite()
	}
	wg.Go(func() { oneWay(a, b) })
	wg.Go(func() { oneWay(b, a) })
	wg.Wait()
}

// admitted says whether a client at src may connect under ranges (spec.loadBalancerSourceRanges): all may if
// there are none. An entry that is not a CIDR admits nobody, so a typo fails closed.
func admitted(src netip.Addr, ranges []string) bool {
	if len(ranges) == 0 {
		return true
	}
	src = src.Unmap()
	for _, r := range ranges {
		if p, err := netip.ParsePrefix(strings.TrimSpace(r)); err == nil && p.Contains(src) {
			return true
		}
	}
	return false
}

// backends lists where a connection to port may go: the first address of each ready, non-terminating endpoint
// (the only one the API gives meaning to), at the number its slice gives the port's name, since a named
// targetPort can resolve differently from pod to pod. Sorted and deduplicated (an endpoint can briefly be in
// two slices), so that round-robin order does not depend on the cache's.
func backends(port corev1.ServicePort, eps []*discoveryv1.EndpointSlice) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN: not an address to dial
		}
		j := slices.IndexFunc(s.Ports, func(p discoveryv1.EndpointPort) bool {
			return ptrOr(p.Name, "") == port.Name && isTCP(ptrOr(p.Protocol, corev1.ProtocolTCP)) &&
				p.Port != nil && *p.Port > 0 && *p.Port <= 65535
		})
		if j < 0 {
			continue
		}
		num := uint16(*s.Ports[j].Port)
		for _, ep := range s.Endpoints {
			if !ptrOr(ep.Conditions.Ready, true) || ptrOr(ep.Conditions.Terminating, false) || len(ep.Addresses) == 0 {
				continue
			}
			if addr, err := netip.ParseAddr(ep.Addresses[0]); err == nil {
				out = append(out, netip.AddrPortFrom(addr, num))
			}
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// rotate returns targets starting from the turn-th (modulo their number): the order one connection tries.
func rotate[T any](targets []T, turn uint64) []T {
	if len(targets) == 0 {
		return nil
	}
	i := int(turn % uint64(len(targets)))
	return append(slices.Clone(targets[i:]), targets[:i]...)
}

func ptrOr[T any](p *T, otherwise T) T {
	if p == nil {
		return otherwise
	}
	return *p
}

// ---------------------------------------------------------------------------------------------------
// The API server's endpoint for the node's pods

func parseRelay(spec string) (listen, target netip.AddrPort, err error) {
	l, t, ok := strings.Cut(spec, "=")
	if !ok {
		return listen, target, errors.New("want LISTEN=TARGET, two address:port")
	}
	if listen, err = netip.ParseAddrPort(l); err == nil {
		target, err = netip.ParseAddrPort(t)
	}
	return listen, target, err
}

// relayAPIServer listens on listen (retrying until its address exists) and relays each connection from a client
// inside allowed to target, until ctx ends.
func relayAPIServer(ctx context.Context, listen, target netip.AddrPort, allowed []netip.Prefix) {
	var l net.Listener
	for logged := false; ; logged = true {
		var err error
		if l, err = (&net.ListenConfig{}).Listen(ctx, "tcp", listen.String()); err == nil {
			break
		}
		if !logged {
			log.Printf("apiserver relay: waiting to listen on %s: %v", listen, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	log.Printf("apiserver relay: %s -> %s for clients in %v", listen, target, allowed)
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func(client *net.TCPConn) {
			defer client.Close()
			from := client.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			if !slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(from) }) {
				log.Printf("apiserver relay: refused %s: not in %v", from, allowed)
				return
			}
			upstream, errs := dialFirst(ctx, []netip.AddrPort{target})
			if upstream == nil {
				log.Printf("apiserver relay: from %s: %s", from, strings.Join(errs, "; "))
				return
			}
			defer upstream.Close()
			pipe(client, upstream)
		}(conn.(*net.TCPConn))
	}
}
