import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends the run with one plain line, `N passed, N failed, N skipped`, that any CI log reader
 * understands without knowing vitest's own summary format.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    const count = (state: 'passed' | 'failed' | 'skipped'): number =>
      testModules.reduce((n, m) => n + [...m.children.allTests(state)].length, 0);
    // A file that failed to load has no tests to count; it still fails the run.
    const brokenFiles = testModules.filter((m) => m.state() === 'failed' && [...m.children.allTests()].length === 0).length;
    const failed = count('failed') + brokenFiles + unhandledErrors.length;
    process.stdout.write(`\n${count('passed')} passed, ${failed} failed, ${count('skipped')} skipped\n`);
  }
}
