// `npm run test:electron`: the same extension-host suite (out/test/suite) in a downloaded desktop
// VS Code through @vscode/test-electron, where VS Code can be downloaded. (Machines without that
// access run it under code-server's VS Code server instead: scripts/e2e.mjs, part of `npm test`.)
import { runTests } from '@vscode/test-electron';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const b = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
const ws = mkdtempSync(join(tmpdir(), 'headlens-ws-'));
cpSync(join(root, 'test', 'fixtures', 'workspace'), ws, { recursive: true });
cpSync(join(root, 'media', 'samples', 'attention.py'), join(ws, 'sample.py'));
try {
  await runTests({
    version: '1.100.3',
    extensionDevelopmentPath: root,
    extensionTestsPath: join(root, 'out', 'test', 'suite', 'index.js'),
    launchArgs: [ws, '--disable-extensions', '--disable-workspace-trust'],
  });
} catch (e) {
  console.error(`extension tests failed: ${e.message ?? e}`);
  process.exit(1);
}
