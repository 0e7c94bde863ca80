/**
 * Attention weights to pixels, shared by the matrix tiles and the overview's thumbnails. Softmax
 * weights lie in [0, 1] and are drawn on a square-root scale (small weights stay visible); HYLA's
 * RMS-over-heads scores are signed, bounded by √H, and drawn diverging. The colour of each of the
 * 65,536 binary16 bit patterns is looked up once, so a tile reads bits and writes pixels. Pooling
 * keeps the most extreme weight of a block — for non-negative weights, the largest, found by
 * comparing the bits with the sign masked off (binary16 orders like its magnitude).
 */
import type { AnalysisModel } from '../model';
import { HALF_TO_FLOAT, type AttentionMap } from '../attentionMap';
import { valueScale, type ValueScale } from '../theme';

export interface AttentionColours {
  scale: ValueScale;
  /** Packed pixel of every binary16 bit pattern. */
  byHalf: Uint32Array;
}

/** Per analysis, until the theme changes (the table takes a few milliseconds to fill). */
let cache = new WeakMap<AnalysisModel, AttentionColours>();

export function forgetAttentionColours(): void {
  cache = new WeakMap();
}

export function attentionColours(model: AnalysisModel): AttentionColours {
  let c = cache.get(model);
  if (!c) cache.set(model, (c = makeColours(model)));
  return c;
}

function makeColours(model: AnalysisModel): AttentionColours {
  const signed = model.model.config?.attention === 'rms_head';
  const scale = signed ? valueScale([-Math.sqrt(model.H), Math.sqrt(model.H)], true) : valueScale([0, 1], false, 0.5);
  const byHalf = new Uint32Array(65536);
  for (let b = 0; b < 65536; b++) {
    const i = scale.index(HALF_TO_FLOAT[b]);
    byHalf[b] = i < 0 ? scale.missing : scale.lut[i];
  }
  return { scale, byHalf };
}

/** The keys [from, to) a query can see at a layer (the rest are masked to 0). */
export function visibleKeys(model: AnalysisModel, layer: number, q: number, T: number): [number, number] {
  const w = model.model.attentionWindows?.[layer] ?? null;
  if (w === 'bidirectional' || (w === null && !model.model.causal)) return [0, T];
  return [typeof w === 'number' ? Math.max(0, q - w) : 0, Math.min(T, q + 1)];
}

/**
 * Paint (outH, outW) pixels of head h's map: pixel (y, x) covers queries r0 + y·sr … and keys
 * c0 + x·sc …, pooled to the most extreme weight.
 */
export function paintAttention(map: AttentionMap, h: number, colours: AttentionColours, model: AnalysisModel, layer: number, out: Uint32Array, outW: number, outH: number, r0: number, c0: number, sr: number, sc: number): void {
  const T = map.T, lut = colours.byHalf;
  const best = new Uint16Array(outW);
  for (let y = 0; y < outH; y++) {
    best.fill(0);
    const qEnd = Math.min(T, r0 + (y + 1) * sr);
    for (let q = r0 + y * sr; q < qEnd; q++) {
      const row = map.row(h, q);
      const [vk0, vk1] = visibleKeys(model, layer, q, T);
      const k0 = Math.max(c0, vk0), k1 = Math.min(c0 + outW * sc, vk1);
      if (sc === 1) {
        for (let k = k0; k < k1; k++) {
          const b = row[k];
          if ((b & 0x7fff) > (best[k - c0] & 0x7fff)) best[k - c0] = b;
        }
      } else {
        for (let k = k0; k < k1; k++) {
          const b = row[k], x = ((k - c0) / sc) | 0;
          if ((b & 0x7fff) > (best[x] & 0x7fff)) best[x] = b;
        }
      }
    }
    const o = y * outW;
    for (let x = 0; x < outW; x++) out[o + x] = lut[best[x]];
  }
}
