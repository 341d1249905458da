// A static Go program for the guest (CGO_ENABLED=0): goroutines, channels, sync, timers and
// tickers, and the CPU count the runtime sees. It checks its own results and prints only
// deterministic lines — except `numcpu=` and `gomaxprocs=`, which the test compares with the
// machine's CPU count (the guest's in the guest). Exit status 0 when every check passed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var failed int

func check(name string, got, want interface{}) {
	fmt.Printf("%s: %v\n", name, got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		fmt.Printf("FAIL %s: expected %v\n", name, want)
		failed++
	}
}

func main() {
	fmt.Printf("numcpu=%d\n", runtime.NumCPU())
	fmt.Printf("gomaxprocs=%d\n", runtime.GOMAXPROCS(0))
	check("goos", runtime.GOOS+"/"+runtime.GOARCH, "linux/amd64")
	goroutines()
	channels()
	syncPrimitives()
	timers()
	if failed == 0 {
		fmt.Println("go: all checks passed")
	} else {
		fmt.Printf("go: %d checks FAILED\n", failed)
		os.Exit(1)
	}
}

func goroutines() {
	// 1000 goroutines, each squaring its number; results gathered over a channel.
	results := make(chan int)
	for i := 1; i <= 1000; i++ {
		go func(n int) { results <- n * n }(i)
	}
	sum := 0
	for i := 0; i < 1000; i++ {
		sum += <-results
	}
	check("goroutines.sum_of_squares", sum, 1000*1001*2001/6)

	// A pipeline: generate -> square -> filter even, closed in turn.
	gen := func(n int) <-chan int {
		out := make(chan int)
		go func() {
			defer close(out)
			for i := 0; i < n; i++ {
				out <- i
			}
		}()
		return out
	}
	square := func(in <-chan int) <-chan int {
		out := make(chan int, 8)
		go func() {
			defer close(out)
			for v := range in {
				out <- v * v
			}
		}()
		return out
	}
	var evens []int
	for v := range square(gen(10)) {
		if v%2 == 0 {
			evens = append(evens, v)
		}
	}
	check("pipeline", evens, []int{0, 4, 16, 36, 64})

	// A ring of goroutines, many more than CPUs, each blocked until its neighbour passes the
	// token on.
	var wg sync.WaitGroup
	ring := make([]chan int, 65)
	for i := range ring {
		ring[i] = make(chan int)
	}
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ring[i+1] <- 1 + <-ring[i]
		}(i)
	}
	ring[0] <- 0
	check("ring.passes", <-ring[64], 64)
	wg.Wait()
}

func channels() {
	buffered := make(chan string, 3)
	buffered <- "a"
	buffered <- "b"
	buffered <- "c"
	close(buffered)
	var got []string
	for s := range buffered {
		got = append(got, s)
	}
	check("buffered", strings.Join(got, ","), "a,b,c")
	v, ok := <-buffered
	check("closed.receive", fmt.Sprintf("%q %v", v, ok), `"" false`)

	// select over several channels until all are drained and closed.
	a, b := make(chan int), make(chan int)
	go func() {
		for i := 0; i < 50; i++ {
			a <- i
		}
		close(a)
	}()
	go func() {
		for i := 0; i < 50; i++ {
			b <- 100 + i
		}
		close(b)
	}()
	var fromA, fromB int
	for a != nil || b != nil {
		select {
		case _, ok := <-a:
			if !ok {
				a = nil
				continue
			}
			fromA++
		case _, ok := <-b:
			if !ok {
				b = nil
				continue
			}
			fromB++
		}
	}
	check("select.counts", fmt.Sprint(fromA, " ", fromB), "50 50")

	// select with default never blocks.
	empty := make(chan int)
	select {
	case <-empty:
		check("select.default", "received", "default")
	default:
		check("select.default", "default", "default")
	}
}

func syncPrimitives() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	counter := 0
	var atomicCounter int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				atomic.AddInt64(&atomicCounter, 1)
			}
		}()
	}
	wg.Wait()
	check("mutex.counter", counter, 80000)
	check("atomic.counter", atomic.LoadInt64(&atomicCounter), 80000)

	var once sync.Once
	calls := 0
	for i := 0; i < 10; i++ {
		once.Do(func() { calls++ })
	}
	check("once", calls, 1)

	// A condition variable handing work to waiting goroutines in order.
	var cmu sync.Mutex
	cond := sync.NewCond(&cmu)
	turn := 0
	var order []int
	var cwg sync.WaitGroup
	for id := 4; id >= 0; id-- {
		cwg.Add(1)
		go func(id int) {
			defer cwg.Done()
			cmu.Lock()
			for turn != id {
				cond.Wait()
			}
			order = append(order, id)
			turn++
			cond.Broadcast()
			cmu.Unlock()
		}(id)
	}
	cwg.Wait()
	check("cond.order", order, []int{0, 1, 2, 3, 4})

	var rw sync.RWMutex
	m := map[string]int{}
	var rwg sync.WaitGroup
	for i := 0; i < 8; i++ {
		rwg.Add(1)
		go func(i int) {
			defer rwg.Done()
			rw.Lock()
			m[fmt.Sprintf("k%d", i)] = i
			rw.Unlock()
			rw.RLock()
			_ = m["k0"]
			rw.RUnlock()
		}(i)
	}
	rwg.Wait()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	check("rwmutex.keys", strings.Join(keys, ","), "k0,k1,k2,k3,k4,k5,k6,k7")
}

func timers() {
	start := time.Now()
	timer := time.NewTimer(30 * time.Millisecond)
	<-timer.C
	check("timer.waited_30ms", time.Since(start) >= 30*time.Millisecond, true)

	stopped := time.NewTimer(time.Hour)
	check("timer.stop", stopped.Stop(), true)

	// time.After losing and winning a select.
	fast := make(chan string)
	go func() {
		time.Sleep(10 * time.Millisecond)
		fast <- "value"
	}()
	select {
	case v := <-fast:
		check("after.loses", v, "value")
	case <-time.After(10 * time.Second):
		check("after.loses", "timeout", "value")
	}
	never := make(chan string)
	select {
	case v := <-never:
		check("after.wins", v, "timeout")
	case <-time.After(20 * time.Millisecond):
		check("after.wins", "timeout", "timeout")
	}

	// A ticker: five ticks, each at least a period after the start.
	start = time.Now()
	ticker := time.NewTicker(10 * time.Millisecond)
	ticks := 0
	for range ticker.C {
		ticks++
		if ticks == 5 {
			break
		}
	}
	ticker.Stop()
	check("ticker.ticks", ticks, 5)
	check("ticker.elapsed_50ms", time.Since(start) >= 50*time.Millisecond, true)

	// time.AfterFunc runs on its own goroutine.
	done := make(chan int)
	time.AfterFunc(5*time.Millisecond, func() { done <- 42 })
	check("afterfunc", <-done, 42)

	// A context deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Millisecond)
	defer cancel()
	<-ctx.Done()
	check("context.deadline", errors.Is(ctx.Err(), context.DeadlineExceeded), true)

	// Many goroutines sleeping at once, waking in order of their deadlines.
	var mu sync.Mutex
	var woke []int
	var wg sync.WaitGroup
	for _, ms := range []int{40, 10, 30, 20} {
		wg.Add(1)
		go func(ms int) {
			defer wg.Done()
			// 200 ms apart: ordering is what is checked, not latency (a guest on a busy
			// host may wake a sleeper tens of ms late).
			time.Sleep(time.Duration(ms) * 20 * time.Millisecond)
			mu.Lock()
			woke = append(woke, ms)
			mu.Unlock()
		}(ms)
	}
	wg.Wait()
	check("sleep.order", woke, []int{10, 20, 30, 40})
}
