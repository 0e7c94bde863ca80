// Debian's chromium driven by playwright-core (no browser download; playwright kills it at exit).
import { CHROMIUM } from './tools.mjs';

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 120_000 });
}

/** console-style format strings (%s, %d, %o) filled in, as mocha's reporter writes them through console.log. */
export function formatLog(args) {
  const [first = '', ...rest] = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)));
  return first.replace(/%([sdioOjc])/g, (_, k) => (k === 'c' ? (rest.shift(), '') : rest.shift() ?? '')) + (rest.length ? ' ' + rest.join(' ') : '');
}
