/**
 * The Grafana dashboard and the Prometheus alert rules in deploy/: every query parses as PromQL
 * (Prometheus' own grammar, @prometheus-io/lezer-promql), every metric they name is one a real
 * countersign app serves on /metrics, the rules pass `promtool check rules`, and their unit tests
 * (`promtool test rules`: each alert fires on the series it is about, and not before) pass.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, METRICS_TOKEN } from '../support/harness.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const RULES = join(ROOT, 'deploy/prometheus/countersign-alerts.yml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/countersign-alerts.test.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/countersign-dashboard.json');
/** Series Prometheus makes itself for every scrape target, not served by the app. */
const PROMETHEUS_SERIES = new Set(['up']);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const rules = parseYaml(readFileSync(RULES, 'utf8')) as {
  groups: { name: string; rules: { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[];
};

/** Grafana's variables replaced by what they stand for, so the query is plain PromQL. */
function plainPromQl(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '5m').replace(/\$\{?(\w+)\}?/g, 'countersign');
}

/** The metric names an expression selects, or the first syntax error in it. */
function metricNames(expr: string): { names: string[]; error: string | null } {
  const tree = parser.parse(expr);
  const names: string[] = [];
  let error: string | null = null;
  tree.iterate({
    enter(node) {
      if (node.type.isError && error === null) error = `syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 10), node.to + 10))}`;
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') names.push(expr.slice(node.from, node.to));
    },
  });
  return { names, error };
}

const dashboardQueries = dashboard.panels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}" ${target.refId}`, expr: plainPromQl(target.expr) })),
);
const ruleQueries = rules.groups.flatMap((group) => group.rules.map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })));

describe('the Grafana dashboard', () => {
  it('has panels on a 24-column grid that do not overlap, each with a query on the chosen Prometheus', () => {
    expect(dashboard.uid).toBe('countersign');
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          const cell = `${row}:${column}`;
          expect(cells.has(cell), `${panel.title} overlaps another panel at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
      if (panel.type === 'row') continue;
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(['datasource', 'job', 'instance']);
  });

  it('asks only PromQL that parses', () => {
    expect(dashboardQueries.length).toBeGreaterThan(15);
    for (const { where, expr } of dashboardQueries) expect(metricNames(expr).error, `${where}: ${expr}`).toBeNull();
  });
});

describe('the alert rules', () => {
  it('cover stuck runs, a lost runner, Slack 429s and a saturated SSH pool', () => {
    const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual(
      expect.arrayContaining(['CountersignTasksStuckRunning', 'CountersignRunnerLost', 'CountersignSlackRateLimited', 'CountersignSshPoolSaturated']),
    );
    for (const { where, expr } of ruleQueries) expect(metricNames(expr).error, `${where}: ${expr}`).toBeNull();
  });

  it('pass promtool check rules', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES]).catch((error: { stdout?: string; stderr?: string; code?: string }) => {
      if (error.code === 'ENOENT') throw new Error('promtool is not installed: apt-get install -y --no-install-recommends prometheus, or run .ci/run');
      throw new Error(`promtool check rules failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    });
    expect(stdout).toContain(`SUCCESS: ${ruleQueries.length} rules found`);
  });

  it('pass their unit tests: each fires on what it is about, and not before (promtool test rules)', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', RULE_TESTS]).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    });
    expect(stdout).toContain('SUCCESS');
    // Every alert has a test.
    const tested = new Set([...readFileSync(RULE_TESTS, 'utf8').matchAll(/alertname: (\w+)/g)].map((match) => match[1]));
    for (const { where } of ruleQueries) expect(tested.has(where.replace('alert ', '')), `${where} has no promtool test`).toBe(true);
  });
});

describe('metric names in the dashboard and the rules', () => {
  let h: Harness;
  let served: Set<string>;
  beforeAll(async () => {
    h = await Harness.start();
    // A real run, so every kind of metric has been touched at least once.
    const id = await h.createTask('run sandbox -m "metrics" echo hello');
    await h.waitForStatus(id, 'success');
    const text = await (await fetch(`${h.app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    served = new Set<string>();
    for (const match of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      const [, name, type] = match;
      served.add(name!);
      // Histograms and summaries are queried through their series.
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) served.add(`${name}${suffix}`);
      if (type === 'summary') for (const suffix of ['_sum', '_count']) served.add(`${name}${suffix}`);
    }
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("are all served by a real app's /metrics", () => {
    expect(served.has('countersign_tasks')).toBe(true);
    const unknown: string[] = [];
    for (const { where, expr } of [...dashboardQueries, ...ruleQueries]) {
      for (const name of metricNames(expr).names) if (!served.has(name) && !PROMETHEUS_SERIES.has(name)) unknown.push(`${name} (${where})`);
    }
    expect(unknown, 'metrics the dashboard or alerts use that /metrics does not serve').toEqual([]);
  });

  it('cover every countersign metric the app serves (the dashboard shows each one)', () => {
    const shown = new Set(dashboardQueries.flatMap(({ expr }) => metricNames(expr).names.map((name) => name.replace(/_(bucket|sum|count)$/, ''))));
    const own = [...served].filter((name) => /^countersign_(tasks|run_|queue_|slack_|ssh_|log_)/.test(name) && !/_(bucket|sum|count)$/.test(name));
    expect(own.filter((name) => !shown.has(name))).toEqual([]);
  });
});
