// pulumi-language-yaml: pulumi-yaml's language host, plus the Link RPC that newer CLIs call.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/pulumi/pulumi-yaml/pkg/server"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// The host loads package schemas through the engine's loader (useRPCLoader): then the CLI starts the
// providers, with the runtime options of today's language hosts (the host's own older plugin loader
// would start a Python plugin with flags, such as -toolchain, that current Python hosts do not take).

// withLink serves every RPC of the wrapped host and answers Link itself: a YAML program uses a package
// through Pulumi.yaml's `packages:` entry (written by the CLI), so there is nothing to link.
type withLink struct {
	pulumirpc.LanguageRuntimeServer
}

func (withLink) Link(context.Context, *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	return &pulumirpc.LinkResponse{
		ImportInstructions: "Use its resources in Pulumi.yaml with `type: <package>:<Resource>`.",
	}, nil
}

func main() {
	tracing := flag.String("tracing", "", "emit tracing to a Zipkin-compatible endpoint")
	_ = flag.String("root", "", "root of the program (unused)")
	_ = flag.String("compiler", "", "obsolete")
	flag.Parse()
	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-yaml", "pulumi-language-yaml", *tracing)

	var engine string
	var stop chan bool
	if args := flag.Args(); len(args) > 0 {
		engine = args[0]
		// Stop when the engine goes away or on SIGINT.
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
		stop = make(chan bool)
		go func() {
			<-ctx.Done()
			cancel()
			close(stop)
		}()
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the health check: %w", err))
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, withLink{server.NewLanguageHost(engine, *tracing, true)})
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host: %w", err))
	}
	fmt.Printf("%d\n", handle.Port) // the CLI reads the port from the first line
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped: %w", err))
	}
}
