/**
 * The standalone report's size budget (engine/analysis/report.ts `slimForReport`) and
 * `analyze --html --report-layers`: the report keeps the attention maps of the chosen layers (or
 * of as many layers as fit the budget) and every layer's summaries; a layer the model does not
 * have is one line and exit 2.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExplorerData } from '../engine/protocol';
import { slimForReport } from '../engine/analysis/report';
import { ENGINE_JS } from './helpers/fixtures';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-report-'));
const text = 'def softmax(x):\n    e = np.exp(x - x.max())\n    return e / e.sum()\n'.repeat(6);
fs.writeFileSync(path.join(dir, 'doc.py'), text);

function analyse(extra: string[]): { status: number | null; stderr: string; data?: ExplorerData } {
  const json = path.join(dir, `a${extra.join('')}.json`.replace(/[^\w.]/g, '_'));
  const r = spawnSync(process.execPath, [ENGINE_JS, 'analyze', '--text-file', path.join(dir, 'doc.py'), '--json', json, ...extra], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, data: fs.existsSync(json) ? (JSON.parse(fs.readFileSync(json, 'utf8')) as ExplorerData) : undefined };
}

const mapsOf = (d: ExplorerData) => [...new Set(d.events.flatMap((e) => (e.kind === 'layer' && e.attn ? [e.layer] : [])))].sort();

describe('report size', () => {
  const full = analyse([]);
  test('the analysis has attention maps of every layer to slim', () => {
    assert.equal(full.status, 0, full.stderr);
    assert.deepEqual(mapsOf(full.data!), [0, 1]);
  });

  test('chosen layers only; summaries of every layer stay', () => {
    const { data, attention } = slimForReport(full.data!, { layers: [1] });
    assert.deepEqual(mapsOf(data), [1]);
    assert.deepEqual(attention.dropped, [0]);
    assert.equal(data.events.filter((e) => e.kind === 'layer').length, full.data!.events.filter((e) => e.kind === 'layer').length);
    assert.deepEqual(mapsOf(full.data!), [0, 1], 'the analysis itself is not changed');
  });

  test('a budget keeps layers from the first while they fit, and always one', () => {
    const one = full.data!.events.reduce((n, e) => n + (e.kind === 'layer' && e.layer === 0 && e.attn ? e.attn.data.length : 0), 0);
    assert.deepEqual(mapsOf(slimForReport(full.data!, { budget: one }).data), [0]);
    assert.deepEqual(mapsOf(slimForReport(full.data!, { budget: 1 }).data), [0]);
    assert.deepEqual(mapsOf(slimForReport(full.data!, { budget: 1e12 }).data), [0, 1]);
  });

  test('analyze --html --report-layers writes the chosen maps; a bad layer is one line, exit 2', () => {
    const html = path.join(dir, 'r.html');
    const r = spawnSync(process.execPath, [ENGINE_JS, 'analyze', '--text-file', path.join(dir, 'doc.py'), '--html', html, '--report-layers', '1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /keeps the attention maps of layer 1/);
    const json = /<script type="application\/json" id="headlens-data">([\s\S]*?)<\/script>/.exec(fs.readFileSync(html, 'utf8'))!;
    assert.deepEqual(mapsOf(JSON.parse(json[1]) as ExplorerData), [1]);
    const bad = spawnSync(process.execPath, [ENGINE_JS, 'analyze', '--text-file', path.join(dir, 'doc.py'), '--html', html, '--report-layers', '7'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /--report-layers: '7' is not a layer of this model \(0…1\)/);
  });
});
