/**
 * Training data: globs, folder walks, the token cache, a-gpt's train/val split and window
 * sampling, weighted mixtures and reproducible sampling.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { causalBatch, collectFiles, defaultCacheDir, globToRegExp, loadSources, parseSourceSpec, pickSource, type Source } from '../engine/train/data';
import { Rng } from '../engine/train/rng';
import { EOT_ID, encodeIds } from '../engine/tokenizers/gpt2';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-train-data-'));
function write(rel: string, text: string): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}
const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => `word${(i * 7 + seed) % 97}`).join(' ');

describe('files', () => {
  test('globs: *, ** and character classes over path segments', () => {
    assert.ok(globToRegExp('/a/**/*.ts').test('/a/b/c/d.ts'));
    assert.ok(globToRegExp('/a/**/*.ts').test('/a/d.ts'));
    assert.ok(!globToRegExp('/a/*.ts').test('/a/b/d.ts'));
    assert.ok(globToRegExp('/a/d3-*[!n].js').test('/a/d3-array.js'));
    assert.ok(!globToRegExp('/a/d3-*[!n].js').test('/a/d3-array.min.js'));
    assert.ok(globToRegExp('/a/file?.txt').test('/a/file1.txt'));
  });

  test('a folder: text files only, skipping dependency, build and hidden folders', () => {
    const root = path.join(tmp, 'tree');
    write('tree/src/a.py', 'print(1)\n');
    write('tree/docs/b.md', '# b\n');
    write('tree/node_modules/x/index.js', 'x');
    write('tree/.git/config', 'x');
    write('tree/dist/out.js', 'x');
    fs.writeFileSync(path.join(root, 'blob.bin'), Buffer.from([1, 0, 2, 3]));
    write('tree/empty.txt', '');
    assert.deepEqual(collectFiles(root).map((f) => path.relative(root, f)), ['docs/b.md', 'src/a.py']);
    assert.deepEqual(collectFiles(path.join(root, '**', '*.py')).map((f) => path.relative(root, f)), ['src/a.py']);
  });

  test('PATH@WEIGHT', () => {
    assert.deepEqual(parseSourceSpec('data/x.txt@0.3'), { pattern: 'data/x.txt', weight: 0.3 });
    assert.deepEqual(parseSourceSpec('me@home.txt'), { pattern: 'me@home.txt', weight: 1 });
    assert.throws(() => parseSourceSpec('x@0'), /positive/);
  });
});

describe('corpus', () => {
  test('tokenized once: the cache holds the ids by content hash and is used again', () => {
    const cacheDir = path.join(tmp, 'cache');
    const text = words(400, 1);
    const f = write('c/one.txt', text);
    const [a] = loadSources([f], { valRatio: 0.1, minTokens: 8, cacheDir });
    const cached = fs.readdirSync(cacheDir);
    assert.equal(cached.length, 1);
    // a poisoned cache entry is what the next load sees: it did not tokenize again
    const ids = new Int32Array(fs.readFileSync(path.join(cacheDir, cached[0])).buffer.slice(0));
    ids[0] = 42;
    fs.writeFileSync(path.join(cacheDir, cached[0]), Buffer.from(ids.buffer));
    const [b] = loadSources([f], { valRatio: 0.1, minTokens: 8, cacheDir });
    assert.equal(b.train[0], 42);
    assert.equal(a.train[0], encodeIds(text)[0]);
  });

  test("the token cache lives in the OS's per-user cache folder", () => {
    assert.equal(defaultCacheDir({}, 'linux', '/home/u'), '/home/u/.cache/headlens/tokens');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/c' }, 'linux', '/home/u'), '/c/headlens/tokens');
    assert.equal(defaultCacheDir({}, 'darwin', '/Users/u'), '/Users/u/Library/Caches/headlens/tokens');
    assert.equal(defaultCacheDir({ HEADLENS_CACHE: '/x' }, 'linux', '/home/u'), '/x/tokens');
  });

  test("a-gpt's split: the last 10 % of the tokens (files joined by end-of-text) are validation", () => {
    const cacheDir = path.join(tmp, 'cache2');
    const f1 = write('s/a.txt', words(300, 2)), f2 = write('s/b.txt', words(300, 3));
    const [s] = loadSources([path.join(tmp, 's')], { valRatio: 0.1, minTokens: 8, cacheDir });
    const all = [...encodeIds(fs.readFileSync(f1, 'utf8')), EOT_ID, ...encodeIds(fs.readFileSync(f2, 'utf8')), EOT_ID];
    const nVal = Math.floor(all.length * 0.1);
    assert.deepEqual([...s.train], all.slice(0, all.length - nVal));
    assert.deepEqual([...s.val], all.slice(all.length - nVal));
  });

  test('next-token windows: targets are the inputs shifted by one, reproducible from the seed', () => {
    const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
    const a = causalBatch(tokens, 4, 16, new Rng(9)), b = causalBatch(tokens, 4, 16, new Rng(9));
    assert.deepEqual(a, b);
    for (let i = 0; i < 4 * 16; i++) assert.equal(a.targets[i], a.inputIds[i] + 1);
    for (let r = 0; r < 4; r++) assert.ok(a.targets[r * 16 + 15] <= 999); // never past the end
  });

  test('a weighted mixture samples sources in proportion to their weights', () => {
    const src = (spec: string, weight: number): Source => ({ spec, weight, files: [], train: new Int32Array(), val: new Int32Array() });
    const sources = [src('tiny', 0.1), src('cosmo', 0.4), src('wiki', 0.2), src('code', 0.3)]; // a-gpt's mixture
    const rng = new Rng(1);
    const counts = new Map<string, number>();
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const s = pickSource(sources, rng).spec;
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    for (const s of sources) assert.ok(Math.abs(counts.get(s.spec)! / n - s.weight) < 0.015, `${s.spec}: ${counts.get(s.spec)! / n}`);
  });
});
