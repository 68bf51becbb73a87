# make run: set up .venv and run the workflow on config/config.yaml (the synthetic demo).
# make test: set up .venv and run the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# the configuration of `make run` and `make report` (the synthetic demo unless given)
CONFIG ?= config/config.yaml
STAMP := $(VENV)/.installed

.PHONY: run test setup lint clean bench report quality

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m asdflow check-config config/config.yaml $(CONFIG)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) \
		--profile config/profiles/local
	@echo
	@echo "Table 1 (results/tables/table1.md): official score (%), mean +- std over seeds"
	@cat results/tables/table1.md
	@echo
	@echo "Table 2 (results/tables/table2.md):"
	@cat results/tables/table2.md

# make quality: the demo's data with larger budgets (config/quality.yaml, about an hour on 2 cores),
# in its own work folder quality/ (results in quality/results/), then its Tables 1 and 2.
quality: $(STAMP)
	$(BIN)/python -m asdflow check-config config/config.yaml config/quality.yaml
	mkdir -p quality/config
	cp config/config.yaml quality/config/config.yaml
	cp -r config/profiles quality/config/
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --snakefile "$(CURDIR)/Snakefile" \
		--directory quality --cores $(CORES) --configfile "$(CURDIR)/config/quality.yaml" \
		--profile config/profiles/local
	@echo
	@echo "Table 1 (quality/results/tables/table1.md): official score (%), mean +- std over seeds"
	@cat quality/results/tables/table1.md
	@echo
	@echo "Table 2 (quality/results/tables/table2.md):"
	@cat quality/results/tables/table2.md

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

# make report: the HTML report (tables, figures, captions) of the finished run of $(CONFIG).
report: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores 1 --configfile $(CONFIG) \
		--report results/report.html
	@echo "report: results/report.html"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/snakefmt --check Snakefile rules

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/asdflow bench features

clean:
	rm -rf results logs .snakemake
