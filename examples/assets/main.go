// Command assets is a small asset graph over generated data, with the
// asset commands built in:
//
//	raw_orders (a CSV file it writes) ──> cleaned_orders ──> joined_orders ──> daily_revenue[day] ──> revenue_summary
//	customers ─────────────────────────────────────────────────┘
//
// Materialize everything, look at it, break it, resume it:
//
//	go run ./examples/assets assets materialize
//	go run ./examples/assets assets status
//	EXAMPLE_FAIL='daily_revenue[2026-01-05]' go run ./examples/assets assets materialize
//	go run ./examples/assets runs resume last
//	go run ./examples/assets assets lineage --dot | dot -Tsvg > lineage.svg
//
// Values and the event log go to demo/assets/store, the CSV file to
// demo/assets/data (both under the working directory).
package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
)

const dataDir = "demo/assets/data"

// Orders are generated for these days; daily_revenue has one partition
// per day.
var (
	firstDay = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	days     = asset.DailyPartitions(firstDay).Until(firstDay.AddDate(0, 0, 14))
)

// OrdersFile is where raw_orders wrote its data: the asset manages its own
// storage and records only this.
type OrdersFile struct {
	Path string `json:"path"`
	Rows int    `json:"rows"`
}

// Order is a cleaned order.
type Order struct {
	ID       int     `json:"id"`
	Customer int     `json:"customer"`
	Day      string  `json:"day"`
	Amount   float64 `json:"amount"`
}

// Customer is one customer.
type Customer struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Region string `json:"region"`
}

// Sale is an order with its customer.
type Sale struct {
	Order
	Name   string  `json:"name"`
	Region *string `json:"region"` // nil for an unknown customer
}

// Revenue is a day's (or all days') revenue by region.
type Revenue map[string]float64

func main() {
	assetcli.Main(graph(), assetcli.Options{Config: asset.Config{Store: "demo/assets/store"}})
}

// graph defines the assets.
func graph() *asset.Graph {
	g := asset.New()

	raw := asset.Define(g, asset.Spec{
		Key: "raw_orders", Group: "ingest", CodeVersion: "1", External: true,
		Description: "orders as exported: a CSV file with some bad rows",
	}, func(c *asset.Context) (OrdersFile, error) {
		if err := injected(c); err != nil {
			return OrdersFile{}, err
		}
		return writeOrders(c)
	})

	customers := asset.Define(g, asset.Spec{
		Key: "customers", Group: "ingest", CodeVersion: "1",
		Description: "the customer table",
	}, func(c *asset.Context) ([]Customer, error) {
		if err := injected(c); err != nil {
			return nil, err
		}
		regions := []string{"north", "south", "east", "west"}
		out := make([]Customer, 40)
		for i := range out {
			out[i] = Customer{ID: i + 1, Name: fmt.Sprintf("customer-%02d", i+1), Region: regions[i%len(regions)]}
		}
		return out, nil
	})

	cleaned := asset.Define1(g, asset.Spec{
		Key: "cleaned_orders", CodeVersion: "1",
		Description: "parsed orders, bad rows dropped",
		Checks:      []asset.Check{asset.RowsAtLeast(1).Block()},
	}, raw, func(c *asset.Context, f OrdersFile) ([]Order, error) {
		if err := injected(c); err != nil {
			return nil, err
		}
		return readOrders(c, f.Path)
	})

	joined := asset.Define2(g, asset.Spec{
		Key: "joined_orders", CodeVersion: "1",
		Description: "orders with their customer's name and region",
		Checks:      []asset.Check{asset.NoNulls("region")},
	}, cleaned, customers, func(c *asset.Context, orders []Order, cs []Customer) ([]Sale, error) {
		if err := injected(c); err != nil {
			return nil, err
		}
		byID := map[int]Customer{}
		for _, cu := range cs {
			byID[cu.ID] = cu
		}
		out := make([]Sale, len(orders))
		for i, o := range orders {
			s := Sale{Order: o}
			if cu, ok := byID[o.Customer]; ok {
				s.Name, s.Region = cu.Name, &cu.Region
			}
			out[i] = s
		}
		return out, nil
	})

	daily := asset.Define1(g, asset.Spec{
		Key: "daily_revenue", CodeVersion: "1", Partitions: days,
		Description: "revenue by region, one partition per day",
		Retry:       asset.RetryPolicy{MaxAttempts: 2, Delay: 100 * time.Millisecond},
	}, joined, func(c *asset.Context, sales []Sale) (Revenue, error) {
		if err := injected(c); err != nil {
			return nil, err
		}
		rev := Revenue{}
		for _, s := range sales {
			if s.Day == c.Partition && s.Region != nil {
				rev[*s.Region] += s.Amount
			}
		}
		return rev, nil
	})

	asset.Define1(g, asset.Spec{
		Key: "revenue_summary", CodeVersion: "1",
		Description: "revenue by region over every day",
	}, asset.AllPartitions(daily), func(c *asset.Context, byDay map[string]Revenue) (Revenue, error) {
		if err := injected(c); err != nil {
			return nil, err
		}
		total := Revenue{}
		for _, day := range slices.Sorted(maps.Keys(byDay)) {
			for region, v := range byDay[day] {
				total[region] += v
			}
		}
		for region, v := range total {
			total[region] = float64(int64(v*100+0.5)) / 100
		}
		return total, nil
	})
	return g
}

// injected fails the asset (or partition) named by EXAMPLE_FAIL, a
// comma-separated list of KEY or KEY[PARTITION], to show a failure and a
// resume.
func injected(c *asset.Context) error {
	name := c.Key
	if c.Partition != "" {
		name += "[" + c.Partition + "]"
	}
	for f := range strings.SplitSeq(os.Getenv("EXAMPLE_FAIL"), ",") {
		if f != "" && (f == name || f == c.Key) {
			return asset.Permanent(fmt.Errorf("failing %s on purpose (EXAMPLE_FAIL)", name))
		}
	}
	return nil
}

// writeOrders generates the raw orders file: the same bytes every time.
// It writes a temporary file of its own, named after its process and
// unique in it, and renames it into place, so that runs at the same time
// neither write into each other's file nor read a half-written one. The
// temporary files of runs that were killed are removed first: their
// processes are gone, and a killed write is always computed again.
func writeOrders(c *asset.Context) (_ OrdersFile, err error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return OrdersFile{}, err
	}
	path := filepath.Join(dataDir, "raw_orders.csv")
	removeOrphans(path)
	f, err := os.CreateTemp(dataDir, fmt.Sprintf("raw_orders.csv.%d.*.tmp", os.Getpid()))
	if err != nil {
		return OrdersFile{}, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := csv.NewWriter(f)
	w.Write([]string{"id", "customer", "day", "amount"})
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	for i := 1; i <= n; i++ {
		day := firstDay.AddDate(0, 0, rng.IntN(14)).Format(asset.DailyLayout)
		amount := strconv.FormatFloat(float64(rng.IntN(20000))/100, 'f', 2, 64)
		switch i % 97 { // a few bad rows, as real exports have
		case 13:
			amount = ""
		case 41:
			amount = "-" + amount
		}
		w.Write([]string{strconv.Itoa(i), strconv.Itoa(1 + rng.IntN(40)), day, amount})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Sync(), f.Close()); err != nil {
		return OrdersFile{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return OrdersFile{}, err
	}
	abs, _ := filepath.Abs(path)
	c.SetRows(n)
	c.AddMetadata("path", abs)
	return OrdersFile{Path: abs, Rows: n}, nil
}

// removeOrphans removes the temporary files that writeOrders left beside
// path in processes that no longer exist (killed before their rename).
func removeOrphans(path string) {
	olds, _ := filepath.Glob(path + ".*.*.tmp")
	for _, old := range olds {
		num, _, _ := strings.Cut(strings.TrimPrefix(old, path+"."), ".")
		pid, err := strconv.Atoi(num)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(old)
		}
	}
}

// readOrders parses the raw file, dropping rows without a valid positive
// amount.
func readOrders(c *asset.Context, path string) ([]Order, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty, not even a header", path)
	}
	var out []Order
	dropped := 0
	for _, r := range recs[1:] {
		id, err1 := strconv.Atoi(r[0])
		cust, err2 := strconv.Atoi(r[1])
		amount, err3 := strconv.ParseFloat(r[3], 64)
		if err1 != nil || err2 != nil || err3 != nil || amount <= 0 {
			dropped++
			continue
		}
		out = append(out, Order{ID: id, Customer: cust, Day: r[2], Amount: amount})
	}
	c.AddMetadata("dropped", strconv.Itoa(dropped))
	return out, nil
}
