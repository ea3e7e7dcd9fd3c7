# The two commands of the README, plus the benchmarks.
.PHONY: demo test bench

demo:  ## install what's missing, start the dev provider, run the app against it
	tests/scripts/demo

test:  ## run every test (what CI runs)
	tests/run

bench: ## print the performance figures
	tests/bench/run
