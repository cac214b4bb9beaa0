// Mocha reporter: the usual spec output, plus the run's counts written as JSON to $SPI_TEST_STATS
// so that `make test` can print one summary line for all suites.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Mocha = require('mocha');
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const out = process.env.SPI_TEST_STATS;
      if (!out) return;
      const { passes, failures, pending, tests } = runner.stats;
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, JSON.stringify({ passes, failures, pending, tests }));
    });
  }
}
module.exports = SummaryReporter;
