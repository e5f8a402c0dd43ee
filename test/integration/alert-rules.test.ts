import { readFile, readlink, realpath } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../harness/stack.js';
import { RULES_FILE, RULES_TEST_FILE, prometheusBinaries, promtool } from '../harness/prometheus.js';

const CHART_RULES = `${PROJECT_ROOT}deploy/helm/kvdr/files/kvdr.rules.yaml`;

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}
interface RuleTests {
  rule_files: string[];
  tests: { name?: string; alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] }[] }[];
}

describe('kvdr alert rules', () => {
  beforeAll(async () => {
    await prometheusBinaries(); // the first run builds promtool (minutes): not this file's tests' time
  }, 900_000);

  it('are one file: the plain rules are a relative link to the file the Helm chart renders', async () => {
    const target = await readlink(RULES_FILE);
    expect(isAbsolute(target)).toBe(false);
    expect(await realpath(RULES_FILE)).toBe(await realpath(CHART_RULES));
  });

  it('pass promtool check rules, through the link as well', async () => {
    for (const file of [CHART_RULES, RULES_FILE]) {
      const { code, output } = await promtool('check', 'rules', file);
      expect(code, output).toBe(0);
      expect(output).toMatch(/SUCCESS: \d+ rules found/);
    }
  });

  it('pass their promtool unit tests', async () => {
    const { code, output } = await promtool('test', 'rules', RULES_TEST_FILE);
    expect(code, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });

  it('each have a severity, a summary, a description and a runbook hint, and a test where they fire and one where they do not', async () => {
    const rules = parse(await readFile(CHART_RULES, 'utf8')) as RuleFile;
    const tests = parse(await readFile(RULES_TEST_FILE, 'utf8')) as RuleTests;
    const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
    expect(alerts.length).toBeGreaterThan(0);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const problems: string[] = [];
    for (const rule of alerts) {
      const name = rule.alert ?? '';
      if (!['critical', 'warning'].includes(rule.labels?.['severity'] ?? '')) problems.push(`${name}: severity is not critical or warning`);
      for (const key of ['summary', 'description', 'runbook']) if (!rule.annotations?.[key]) problems.push(`${name}: no ${key} annotation`);
      const mine = cases.filter((c) => c.alertname === name);
      if (!mine.some((c) => (c.exp_alerts ?? []).length > 0)) problems.push(`${name}: no test where it fires`);
      if (!mine.some((c) => (c.exp_alerts ?? []).length === 0)) problems.push(`${name}: no test where it does not fire`);
    }
    // A test naming an alert that does not exist would pass vacuously: its "does not fire" proves nothing.
    for (const c of cases) if (!alerts.some((a) => a.alert === c.alertname)) problems.push(`test at ${c.eval_time} names ${c.alertname}, which the rules do not define`);
    expect(problems).toEqual([]);
  });
});
