/**
 * A webview bundle in a real browser (Debian's chromium through playwright-core), on a page built
 * as the host builds it: the view's style sheets, `<div id="app">`, then the bundle. The transport
 * is the stand-in webview/lib/transport.ts picks up in tests: it keeps what the page posts and the
 * state it saves, and a saved state can be handed to the next page to test a reload. Every page
 * error is collected, named by the page it came from.
 *
 * The members are arrow functions, so a test can take them out and call them as plain functions:
 *   const view = new WebviewPages<Posted>({ bundle: 'monitor', css: ['monitor.css'], viewport: { width: 420, height: 1400 } });
 *   const { load, send, posted, pageState, errors } = view;
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO } from './fixtures';

export const CHROMIUM = '/usr/bin/chromium';

const TRANSPORT = `window.__headlensTransport = { posted: [], state: undefined, post(m) { this.posted.push(m); }, getState() { return this.state; }, setState(s) { this.state = s; } };`;

const bundlePath = (name: string) => path.join(REPO, 'media', 'dist', `${name}.js`);
/** media/dist/<name>.js, as built by scripts/build.mjs. */
export const bundleSource = (name: string) => fs.readFileSync(bundlePath(name), 'utf8');
/** Style sheets under media/, joined in order. */
export const mediaCss = (...names: string[]) => names.map((n) => fs.readFileSync(path.join(REPO, 'media', n), 'utf8')).join('\n');

export interface WebviewSpec {
  /** The bundle's name: media/dist/<bundle>.js. */
  bundle: string;
  /** Style sheets under media/, in order. */
  css: string[];
  viewport: { width: number; height: number };
  /** Inline style of the body, where VS Code sets the theme's variables. */
  bodyStyle?: string;
  /** Script run after the transport is in place and before the bundle. */
  prelude?: string;
}

type Transport<Posted> = { __headlensTransport: { posted: Posted[]; state: unknown } };

export class WebviewPages<Posted extends { type: string } = { type: string }> {
  /** Every page error so far, as `<page>: <message>`. */
  readonly errors: string[] = [];
  private browser: Browser | undefined;

  constructor(private readonly spec: WebviewSpec) {}

  /** Starts chromium; for `before`. Missing chromium or an unbuilt bundle is one line saying what to do. */
  launch = async (): Promise<void> => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (the CI script installs it)`);
    const bundle = bundlePath(this.spec.bundle);
    if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: build the webviews first (node scripts/build.mjs)`);
    this.browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  };

  /** For `after`. */
  close = async (): Promise<void> => {
    await this.browser?.close();
  };

  /** An empty page whose errors are collected under `label`. */
  newPage = async (label = this.spec.bundle, viewport = this.spec.viewport): Promise<Page> => {
    if (!this.browser) throw new Error('the browser is not started: call launch() in before()');
    const page = await this.browser.newPage({ viewport });
    page.on('pageerror', (e) => this.errors.push(`${label}: ${e.message}`));
    return page;
  };

  /** The view's page (another bundle's with `bundle`), starting from `savedState` when given. */
  load = async (savedState?: unknown, bundle = this.spec.bundle): Promise<Page> => {
    const page = await this.newPage(bundle);
    const restore = savedState === undefined ? '' : `window.__headlensTransport.state = ${JSON.stringify(savedState)};`;
    const body = this.spec.bodyStyle === undefined ? '<body>' : `<body style="${this.spec.bodyStyle}">`;
    await page.setContent(`<!DOCTYPE html><html><head><style>${mediaCss(...this.spec.css)}</style></head>${body}<div id="app"></div>
<script>${TRANSPORT}${restore}${this.spec.prelude ?? ''}</script><script>${bundleSource(bundle)}</script></body></html>`);
    return page;
  };

  /** A message from the host, as the webview receives it. */
  send = (page: Page, msg: unknown): Promise<void> => page.evaluate((m) => window.postMessage(m, '*'), msg as object);

  /** Every message the page has posted to the host, in order. */
  posted = (page: Page): Promise<Posted[]> => page.evaluate(() => (window as unknown as Transport<Posted>).__headlensTransport.posted);

  /** The state the page last saved (what VS Code would hand back after a reload). */
  pageState = (page: Page): Promise<unknown> => page.evaluate(() => (window as unknown as Transport<Posted>).__headlensTransport.state);
}
