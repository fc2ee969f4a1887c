package reliability

import (
	"testing"

	"github.com/clusterdns/clusterdns/test/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }
