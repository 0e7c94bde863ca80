/**
 * Interventions: change a head and measure what follows (`headlens ablate`, `headlens sweep`, the
 * Ablate Heads… view). Per (layer, head): `zero` sets the head's attention output to 0 before the
 * output projection, `mean` replaces it by its mean over the window's positions, `adaptive-off`
 * switches the head's adaptive path off as its mechanism declares (a-gpt's dynamic LoRA ΔW → 0,
 * GatedAttn's gate → 1, the value-embedding gate → 0). Every family's program honours these through
 * the controls inputs (models/family.ts), so the runtime runs the same graph with other inputs.
 */
import { BadInputError, throwIfCancelled, type CancelToken } from '../errors';
import type { Ablation, AblationMode, ModelInfo } from '../protocol';
import type { LoadedModel } from '../runtime/loaded';
import type { HostControls } from '../runtime/runner';
import { bootstrapMean } from '../eval/classes';
import { contextAndStride } from '../eval/ppl';
import { scoreIds } from '../eval/score';

export type { Ablation, AblationMode };
export const ABLATION_MODES: readonly AblationMode[] = ['zero', 'mean', 'adaptive-off'];

/** `L.H:mode,L.H:mode` → ablations, checked against the model. */
export function parseAblations(spec: string, info: ModelInfo): Ablation[] {
  if (!spec.trim()) throw new BadInputError('--ablate needs at least one L.H:mode (e.g. 0.1:zero)');
  return spec.split(',').map((part) => {
    const m = /^\s*(\d+)\.(\d+):([a-z-]+)\s*$/.exec(part);
    if (!m) throw new BadInputError(`--ablate: '${part}' is not L.H:mode (e.g. 0.1:zero, 1.2:mean, 0.0:adaptive-off)`);
    const a = { layer: +m[1], head: +m[2], mode: m[3] as AblationMode };
    checkAblation(a, info);
    return a;
  });
}

export function checkAblation(a: Ablation, info: ModelInfo): void {
  if (!ABLATION_MODES.includes(a.mode)) throw new BadInputError(`--ablate: unknown mode '${a.mode}' (use zero, mean or adaptive-off)`);
  if (a.layer >= info.layers) throw new BadInputError(`--ablate: layer ${a.layer} is outside the model (${info.layers} layers)`);
  if (a.head >= info.heads) throw new BadInputError(`--ablate: head ${a.head} is outside the model (${info.heads} heads)`);
  if (a.mode === 'adaptive-off' && !info.adaptive) throw new BadInputError(`--ablate: a ${info.family} model has no adaptive path to switch off (adaptive-off is for a-gpt's hypernetwork, GatedAttn gates, value-embedding gates)`);
}

/** The controls inputs for a set of ablations (L·H each). */
export function controlsFor(ablations: Ablation[], L: number, H: number): HostControls {
  const c: HostControls = { headScale: new Float32Array(L * H).fill(1), headMean: new Float32Array(L * H), adaptiveOff: new Float32Array(L * H) };
  for (const a of ablations) {
    const i = a.layer * H + a.head;
    if (a.mode === 'zero') c.headScale[i] = 0;
    else if (a.mode === 'mean') c.headMean[i] = 1;
    else c.adaptiveOff[i] = 1;
  }
  return c;
}

/** nll[t] = −log p(ids[t+1]) for t < T − 1 of one sequence that fits the model, with the controls. */
export async function sequenceNll(lm: LoadedModel, ids: Int32Array, controls?: HostControls, token?: CancelToken): Promise<number[]> {
  const targets = Int32Array.from({ length: ids.length }, (_, p) => (p + 1 < ids.length ? ids[p + 1] : -1));
  const nll = await lm.runner.nll({ ids, targets, B: 1, T: ids.length, controls }, token);
  return Array.from(nll.subarray(0, ids.length - 1));
}

/**
 * Per-token NLL of a whole document under ablations, with the sliding windows of the evaluation
 * (a window's controls apply to every window): nll[i] for i ≥ 1 scored token i (NaN for i = 0).
 */
export async function documentNll(lm: LoadedModel, ids: Int32Array, controls: HostControls | undefined, token?: CancelToken): Promise<Float32Array> {
  const { context, stride } = contextAndStride(lm);
  return (await scoreIds(lm, ids, context, stride, token, undefined, controls)).nll;
}

export interface SweepCell {
  layer: number;
  head: number;
  /** Mean ΔNLL (ablated − intact) over the scored tokens, with a bootstrap 95 % interval. */
  mean: number;
  lo: number;
  hi: number;
  n: number;
  /** Per-token ΔNLL (the dNll signal of that ablation; NaN where not scored). */
  dnll: Float32Array;
}

/**
 * Every head in turn under one mode (or every layer: all its heads at once), streamed cell by cell.
 * The intact run is done once.
 */
export async function* sweep(lm: LoadedModel, ids: Int32Array, mode: AblationMode, unit: 'head' | 'layer', token?: CancelToken): AsyncGenerator<SweepCell, { base: Float32Array }> {
  const { layers: L, heads: H } = lm.info;
  if (mode === 'adaptive-off') checkAblation({ layer: 0, head: 0, mode }, lm.info);
  const base = await documentNll(lm, ids, undefined, token);
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < (unit === 'layer' ? 1 : H); h++) {
      throwIfCancelled(token);
      const ablations = unit === 'layer' ? [...Array(H).keys()].map((head) => ({ layer: l, head, mode })) : [{ layer: l, head: h, mode }];
      const nll = await documentNll(lm, ids, controlsFor(ablations, L, H), token);
      const dnll = nll.map((v, i) => v - base[i]);
      const iv = bootstrapMean(Array.from(dnll).filter(Number.isFinite));
      yield { layer: l, head: unit === 'layer' ? -1 : h, ...iv, dnll };
    }
  }
  return { base };
}
