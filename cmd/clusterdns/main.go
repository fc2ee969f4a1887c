// Command clusterdns is a DNS server for Kubernetes clusters; see server.Main.
package main

import (
	"os"

	"github.com/clusterdns/clusterdns/server"
)

func main() { os.Exit(server.Main(os.Args[1:])) }
