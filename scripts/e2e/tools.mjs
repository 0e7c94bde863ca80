// Installs code-server 4.100.3 (a real VS Code 1.100.3: server + web workbench) into .e2e-tools,
// reusing a complete install. Its @vscode/ripgrep postinstall would download a binary: its cache is
// seeded with Debian's /usr/bin/rg first. Needs Debian's chromium, ripgrep and libkrb5-dev.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

export const root = new URL('../..', import.meta.url).pathname;
export const toolsDir = join(root, '.e2e-tools');
export const codeServerDir = join(toolsDir, 'node_modules', 'code-server');
export const CHROMIUM = '/usr/bin/chromium';
const VERSION = '4.100.3';
const marker = join(toolsDir, `.complete-${VERSION}`);

export function missingDebianPackages() {
  const need = [];
  if (!existsSync(CHROMIUM)) need.push('chromium');
  if (!existsSync('/usr/bin/rg')) need.push('ripgrep');
  if (!existsSync('/usr/include/gssapi/gssapi.h') && !existsSync('/usr/include/gssapi.h')) need.push('libkrb5-dev');
  return need;
}

export function ensureCodeServer(log = console.error) {
  if (existsSync(marker) && existsSync(join(codeServerDir, 'lib', 'vscode', 'out', 'server-main.js'))) return codeServerDir;
  const need = missingDebianPackages();
  if (need.length) throw new Error(`missing Debian packages for the VS Code tests: apt-get install ${need.join(' ')}`);
  mkdirSync(toolsDir, { recursive: true });
  if (!existsSync(join(toolsDir, 'package.json'))) writeFileSync(join(toolsDir, 'package.json'), JSON.stringify({ name: 'headlens-e2e-tools', private: true }));
  // seed @vscode/ripgrep's download cache with the system rg
  const cache = join(tmpdir(), 'vscode-ripgrep-cache-1.15.11');
  mkdirSync(cache, { recursive: true });
  const stage = join(tmpdir(), `rg-stage-${process.pid}`);
  mkdirSync(stage, { recursive: true });
  copyFileSync('/usr/bin/rg', join(stage, 'rg'));
  for (const name of ['ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz', 'ripgrep-v13.0.0-13-x86_64-unknown-linux-musl.tar.gz']) {
    spawnSync('tar', ['-czf', join(cache, name), '-C', stage, 'rg']);
  }
  rmSync(stage, { recursive: true, force: true });
  log(`installing code-server@${VERSION} into ${toolsDir} (once, ≈2 min)…`);
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', `code-server@${VERSION}`], {
    cwd: toolsDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, npm_config_unsafe_perm: 'true', npm_config_yes: 'true' },
    timeout: 15 * 60_000,
  });
  if (r.status !== 0) throw new Error(`npm install code-server failed: ${(r.stderr || r.stdout).split('\n').filter(Boolean).slice(-3).join(' | ')}`);
  if (!existsSync(join(codeServerDir, 'lib', 'vscode', 'out', 'server-main.js'))) throw new Error('code-server installed without its VS Code server');
  writeFileSync(marker, new Date().toISOString());
  return codeServerDir;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(ensureCodeServer());
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
