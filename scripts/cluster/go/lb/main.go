// lb-standin gives every LoadBalancer Service of the local cluster an address from 127.0.0.0/8 in
// status.loadBalancer.ingress, as a cloud's service controller (or `minikube tunnel`) would, so that clients
// awaiting the address (Pulumi) complete for real. It only writes status: it forwards no traffic.
//
// Addresses come from --range (default 127.0.10.1-127.0.10.254), are stable while a Service exists, and are
// released when it is deleted or stops being a LoadBalancer. Services naming another loadBalancerClass are
// left to their controller.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

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

func isOurs(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == "")
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	addrRange := flag.String("range", "127.0.10.1-127.0.10.254", "first-last addresses to hand out (loopback only)")
	flag.Parse()
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
	alloc := &allocator{first: first, last: last, used: map[netip.Addr]string{}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sync := func(svc *corev1.Service) {
		key := svc.Namespace + "/" + svc.Name
		if !isOurs(svc) {
			alloc.release(key)
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0 {
				updateStatus(ctx, client, svc, nil)
			}
			return
		}
		if ing := svc.Status.LoadBalancer.Ingress; len(ing) == 1 {
			if addr, err := netip.ParseAddr(ing[0].IP); err == nil && alloc.claim(key, addr) {
				return // already has its address (also after a restart of this controller)
			}
		}
		addr, err := alloc.next(key)
		if err != nil {
			log.Printf("%s: %v", key, err)
			return
		}
		updateStatus(ctx, client, svc, []corev1.LoadBalancerIngress{{IP: addr.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)}})
	}

	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	informer := factory.Core().V1().Services().Informer()
	_, err = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { sync(obj.(*corev1.Service)) },
		UpdateFunc: func(_, obj any) { sync(obj.(*corev1.Service)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if svc, ok := obj.(*corev1.Service); ok {
				alloc.release(svc.Namespace + "/" + svc.Name)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	factory.Start(ctx.Done())
	log.Printf("handing out %s-%s to LoadBalancer Services", first, last)
	<-ctx.Done()
	factory.Shutdown()
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
