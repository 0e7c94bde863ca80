/**
 * Token-by-token analysis (DESIGN.md, "What the analysis reports"), streamed: per window a
 * `tokens` event, then one `layer` event per layer, then an `output` event (NLL, top-k, causality
 * leak). The runtime (onnxruntime or TensorFlow.js) reduces everything on its device; only small
 * arrays (and the attention maps the views ask for, in f16) cross into JS — never the full logits.
 */
import type { AnalyzeEvent, AnalyzeLayerEvent, AnalyzeOutputEvent, AnalyzeParams, AnalyzeResult, ModelInfo, TokenInfo } from '../protocol';
import { encodeArray, encodeHalfBits } from '../codec';
import { BadInputError, type CancelToken, throwIfCancelled } from '../errors';
import type { LoadedModel } from '../runtime/loaded';
import type { WindowLayer, WindowOutput, WindowRequest } from '../runtime/runner';
import { slidingWindows } from './windows';
import { RoleAccumulator, attentionOf, layerRoleScores } from './roles';

/** Default number of prefix positions audited per window (each costs one extra forward). */
export const DEFAULT_AUDIT_POSITIONS = 4;

export interface AnalyzeOptions extends AnalyzeParams {
  /** Causality audit: how many prefix positions per window (0 = off). */
  auditPositions?: number;
}

/**
 * Audit positions: evenly spaced over the first half of the window, always including 0. Each costs
 * a forward of its prefix (t + 1 tokens), and the leak is largest where most of the window lies
 * ahead — so the first half measures the most for the least: 4 positions in a 256-token window
 * cost ≈ one window's blocks (≈ 0.5 of an analysis), where spreading them to the end would cost
 * twice that. `count ≥ T − 1` audits every position.
 */
export function auditPositionsFor(T: number, count: number): number[] {
  if (count <= 0 || T < 2) return [];
  if (count >= T - 1) return [...Array(T - 1).keys()];
  const last = Math.max(0, Math.floor((T - 1) / 2));
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round((i * last) / Math.max(1, count - 1)));
  return [...out].sort((a, b) => a - b);
}

export async function* analyzeText(lm: LoadedModel, params: AnalyzeOptions, token?: CancelToken): AsyncGenerator<AnalyzeEvent, AnalyzeResult> {
  const started = Date.now();
  const { info } = lm;
  const text = typeof params.text === 'string' ? params.text : bad('analyze: `text` must be a string');
  const { start, end } = clampRange(params.range, text.length);
  const tokens = lm.tokenizer.tokenize(text.slice(start, end), start + (params.baseOffset ?? 0));
  if (!tokens.length) throw new BadInputError('nothing to analyse: the text (or the selected range) is empty');
  checkVocab(tokens, info);
  const W = windowSize(params.window, info.config.block_size);
  const windows = slidingWindows(tokens.length, W, strideOf(params.stride, W));
  const audit = info.futureLeak ? params.auditPositions ?? (params.causalityAudit === false ? 0 : DEFAULT_AUDIT_POSITIONS) : 0;
  const vocabText: Record<number, string> = {};
  let nllSum = 0, nllCount = 0, maxLeak: number | null = null;
  const roles = new RoleAccumulator(info.layers, info.heads);
  for (let w = 0; w < windows.length; w++) {
    throwIfCancelled(token);
    const { begin: s, end: e, ownFrom, ownTo } = windows[w];
    const winTokens = tokens.slice(s, e);
    yield { kind: 'tokens', window: w, windowCount: windows.length, tokenStart: s, tokens: winTokens, ownFrom, ownTo };
    const req = windowRequest(info, winTokens, e < tokens.length ? tokens[e].id : -1, params, audit);
    const run = lm.runner.analyzeWindow(req, token);
    const residuals: Float32Array[] = [];
    try {
      for (;;) {
        throwIfCancelled(token);
        const step = await run.next();
        if (step.done) {
          const out = outputEvent(step.value, w, s, req.topK);
          const fresh: Record<number, string> = {};
          for (const id of step.value.topIds) if (vocabText[id] === undefined) vocabText[id] = fresh[id] = lm.tokenizer.tokenText(id);
          if (params.logitLens && info.causal) out.lens = await lensOf(lm, residuals, req.targets, req.topK, vocabText, fresh);
          out.vocabText = fresh;
          for (let p = ownFrom - s; p < ownTo - s; p++) if (Number.isFinite(step.value.nll[p])) (nllSum += step.value.nll[p]), nllCount++;
          for (const v of step.value.leak ?? []) if (Number.isFinite(v)) maxLeak = Math.max(maxLeak ?? 0, v);
          yield out;
          break;
        }
        if (step.value.residual) residuals[step.value.layer] = step.value.residual;
        const attn = attentionOf(step.value);
        if (attn && winTokens.length > 1) roles.add(step.value.layer, layerRoleScores(attn, req.ids, info.heads));
        yield layerEvent(step.value, w, s, winTokens.length, info.heads);
        await new Promise((r) => setImmediate(r)); // let the transport flush and `$/cancel` arrive
      }
    } finally {
      await run.return(undefined as never); // frees the window's tensors when cancelled mid-way
    }
  }
  return {
    tokenCount: tokens.length,
    windowCount: windows.length,
    layers: info.layers,
    heads: info.heads,
    meanNll: nllCount ? nllSum / nllCount : null,
    maxLeak,
    elapsedMs: Date.now() - started,
    backend: lm.runner.name as AnalyzeResult['backend'],
    vocabText,
    ...(roles.result() ? { headRoles: roles.result()! } : {}),
  };
}

function windowRequest(info: ModelInfo, winTokens: TokenInfo[], nextId: number, params: AnalyzeOptions, audit: number): WindowRequest {
  const ids = Int32Array.from(winTokens, (t) => t.id);
  // causal: the target of position t is the next token (across windows); a denoiser: the token itself
  const targets = info.causal ? Int32Array.from([...ids.subarray(1), nextId]) : Int32Array.from(ids);
  const wanted = params.includeAttention === false ? null : params.attentionLayers ? new Set(params.attentionLayers) : 'all';
  return {
    ids,
    targets,
    t: info.config.num_diffusion_steps !== undefined ? params.t ?? 0 : undefined,
    topK: Math.max(1, Math.min(params.topK ?? 5, 20)),
    attention: (l) => wanted === 'all' || (wanted !== null && wanted.has(l)),
    audit: auditPositionsFor(ids.length, audit),
    residuals: !!params.logitLens,
  };
}

/** The logit lens of one window: every layer's residual rows through the final norm and head. */
async function lensOf(lm: LoadedModel, residuals: Float32Array[], targets: Int32Array, K: number, vocabText: Record<number, string>, fresh: Record<number, string>): Promise<NonNullable<AnalyzeOutputEvent['lens']>> {
  const L = residuals.length, T = targets.length, C = lm.config.n_embd;
  const rows = new Float32Array(L * T * C);
  residuals.forEach((r, l) => rows.set(r, l * T * C));
  const allTargets = new Int32Array(L * T);
  for (let l = 0; l < L; l++) allTargets.set(targets, l * T);
  const out = await lm.runner.lens(rows, L * T, allTargets, K);
  for (const id of out.topIds) if (vocabText[id] === undefined) vocabText[id] = fresh[id] = lm.tokenizer.tokenText(id);
  const prob = out.nll.map((v, i) => (allTargets[i] < 0 ? NaN : Math.exp(-v)));
  const rank = out.rank.map((v, i) => (allTargets[i] < 0 ? 0 : v));
  return { topIds: encodeArray(out.topIds, [L, T, K], 'i32'), topProbs: encodeArray(out.topProbs, [L, T, K]), rank: encodeArray(rank, [L, T], 'i32'), prob: encodeArray(prob, [L, T]) };
}

function layerEvent(r: WindowLayer, w: number, tokenStart: number, T: number, H: number): AnalyzeLayerEvent {
  const ev: AnalyzeLayerEvent = {
    kind: 'layer',
    window: w,
    layer: r.layer,
    tokenStart,
    headMax: encodeArray(r.headMax, [H, T]),
    headArgmax: encodeArray(r.headArgmax, [H, T], 'i32'),
    headEntropy: encodeArray(r.headEntropy, [H, T]),
    headDistance: encodeArray(r.headDistance, [H, T]),
    latentKey: encodeArray(r.latentKey, [T], 'i32'),
    latentCode: encodeArray(r.latentCode, [T, H]),
  };
  if (r.attn) ev.attn = 'half' in r.attn ? encodeHalfBits(r.attn.half, [H, T, T]) : encodeArray(r.attn.float, [H, T, T], 'f16');
  const names = Object.keys(r.signals);
  if (names.length) ev.signals = Object.fromEntries(names.map((n) => [n, encodeArray(r.signals[n].values, r.signals[n].shape)]));
  return ev;
}

function outputEvent(r: WindowOutput, w: number, tokenStart: number, K: number): AnalyzeOutputEvent {
  const T = r.nll.length;
  const event: AnalyzeOutputEvent = {
    kind: 'output',
    window: w,
    tokenStart,
    nll: encodeArray(r.nll, [T]),
    topIds: encodeArray(r.topIds, [T, K], 'i32'),
    topProbs: encodeArray(r.topProbs, [T, K]),
  };
  if (r.leak) event.leak = encodeArray(r.leak, [T]);
  return event;
}

function bad(m: string): never {
  throw new BadInputError(m);
}

function clampRange(range: AnalyzeParams['range'], n: number): { start: number; end: number } {
  if (!range) return { start: 0, end: n };
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > n) {
    throw new BadInputError(`analyze: range [${start}, ${end}) is outside the text (length ${n})`);
  }
  return { start, end };
}

/** Default stride: half the window (every scored token then has at least half a window of context). */
function strideOf(requested: number | undefined, window: number): number {
  if (requested === undefined || requested === 0) return Math.max(1, Math.floor(window / 2));
  if (!Number.isInteger(requested) || requested < 1) throw new BadInputError(`analyze: stride must be a positive integer, got ${requested}`);
  return Math.min(requested, window);
}

function windowSize(requested: number | undefined, block: number): number {
  if (requested === undefined || requested === 0) return block;
  if (!Number.isInteger(requested) || requested < 1) throw new BadInputError(`analyze: window must be a positive integer, got ${requested}`);
  return Math.min(requested, block);
}

function checkVocab(tokens: TokenInfo[], info: ModelInfo): void {
  const V = info.config.vocab_size;
  const badTok = tokens.find((t) => t.id >= V);
  if (badTok) {
    throw new BadInputError(`token ${JSON.stringify(badTok.text)} has id ${badTok.id} in the ${info.tokenizer.kind} tokenizer but the model's vocabulary has only ${V} entries (was it trained with another tokenizer?)`);
  }
}
