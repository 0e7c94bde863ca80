/** Shared test helpers: where the reference fixtures are, which backends to test, tolerances. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackendName, Family } from '../../engine/protocol';
import type { HostTensor } from '../../engine/io/tensor';

/** The repository root (tests run from out/test/…). */
export const REPO = (() => {
  let d = __dirname;
  while (!fs.existsSync(path.join(d, 'package.json'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error('cannot find the repository root from ' + __dirname);
    d = up;
  }
  return d;
})();

/** ../shared/fixtures beside the checkout: every family's reference tensors. */
export const SHARED_FIXTURES = path.join(REPO, '..', 'shared', 'fixtures');
/** ../shared/fixtures/agpt beside the checkout (or HEADLENS_FIXTURES). */
export const FIXTURES = process.env.HEADLENS_FIXTURES ?? path.join(SHARED_FIXTURES, 'agpt');
if (!fs.existsSync(FIXTURES)) throw new Error(`reference fixtures not found at ${FIXTURES} (the shared folder must sit beside the checkout)`);

export const FAMILIES_UNDER_TEST: Family[] = ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion'];

/** Backends every parity test runs on: HEADLENS_TEST_BACKENDS=wasm,cpu (default) or e.g. webgpu. */
export function testBackends(): BackendName[] {
  return (process.env.HEADLENS_TEST_BACKENDS ?? 'wasm,cpu,onnx-cpu').split(',').map((s) => s.trim()).filter(Boolean) as BackendName[];
}

/** The engine CLI bundle, built by scripts/build.mjs. */
export const ENGINE_JS = process.env.HEADLENS_ENGINE_JS ?? path.join(REPO, 'dist', 'engine.js');

/**
 * got ≈ expected: `abs` is an absolute bound; `rel` means rel × max(1, max|expected|) (fixture README).
 */
export function assertClose(got: HostTensor, exp: HostTensor, tol: { abs?: number; rel?: number }, label: string): void {
  assert.deepEqual(got.shape, exp.shape, `${label}: shape [${got.shape}] vs expected [${exp.shape}]`);
  let maxAbs = 0, worst = 0, at = -1;
  for (let i = 0; i < exp.values.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(exp.values[i]));
    const d = Math.abs(got.values[i] - exp.values[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  const bound = tol.abs ?? (tol.rel ?? 1e-3) * Math.max(1, maxAbs);
  assert.ok(worst <= bound, `${label}: max |diff| ${worst} at ${at} exceeds ${bound} (got ${got.values[at]}, expected ${exp.values[at]})`);
}
