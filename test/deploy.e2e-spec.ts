import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { METRIC } from '../src/metrics/metric-names';

/** The repository root: two levels above the compiled spec (dist/test), else the working directory (`npm test` runs there). */
function repoRoot(): string {
  for (const dir of [resolve(__dirname, '../..'), process.cwd()]) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'drawbridge-gateway') return dir;
  }
  assert.fail('cannot find the repository root');
}

const ALERTS = join(repoRoot(), 'deploy/prometheus/alerts.yml');

describe('deploy files', () => {
  it('promtool check rules passes on deploy/prometheus/alerts.yml', () => {
    const result = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    assert.ifError(result.error);
    assert.equal(result.status, 0, `promtool check rules failed:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /SUCCESS: [1-9]\d* rules found/);
  });

  it('the alert rules use only metric names the gateway exports', () => {
    const known = new Set<string>(Object.values(METRIC));
    const used = new Set(readFileSync(ALERTS, 'utf8').match(/\bdrawbridge_\w+/g) ?? []);
    assert.ok(used.size > 0);
    for (const name of used) assert.ok(known.has(name) || known.has(name.replace(/_(bucket|sum|count)$/, '')), `alerts.yml uses ${name}, which the gateway does not export`);
  });
});
