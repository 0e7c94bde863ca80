/**
 * The extension-host test entry in the standard @vscode/test-electron shape: `run()` loads every
 * `*.test.js` under this folder into mocha (TDD interface), logs mocha's report and a closing
 * "N passed, N failed" line to the console, and rejects when a test fails (the runner then exits
 * non-zero). Runs the same under @vscode/test-electron (scripts/test-electron.mjs) and under the
 * VS Code server (scripts/e2e.mjs).
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import Mocha from 'mocha';

function testFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return testFiles(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}

export function run(): Promise<void> {
  // mocha's own per-test limit; the runners also cap the whole suite
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 120_000, reporter: 'spec' });
  // HEADLENS_SUITE_ONLY=a,b: only the files whose names contain one of these (while working on them)
  const only = (process.env.HEADLENS_SUITE_ONLY ?? '').split(',').filter(Boolean);
  const files = testFiles(__dirname).sort().filter((f) => !only.length || only.some((o) => path.basename(f).includes(o)));
  console.log(`extension tests: ${files.length} files in ${__dirname}`);
  for (const f of files) mocha.addFile(f);
  return new Promise((resolve, reject) => {
    try {
      const runner = mocha.run((failures) => {
        const { passes = 0, pending = 0 } = runner.stats ?? {};
        console.log(`${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}`);
        if (failures) reject(new Error(`${failures} extension test(s) failed`));
        else resolve();
      });
    } catch (e) {
      // a test file that throws while loading
      console.error(e);
      console.log('0 passed, 1 failed');
      reject(e);
    }
  });
}
