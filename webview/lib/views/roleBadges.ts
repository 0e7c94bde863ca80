/**
 * Head-role badges on the layers × heads overview: a small letter in the corner of a head's cell
 * when its score on the analysed text passes ROLE_THRESHOLD — P previous-token, D duplicate-token,
 * I induction, scored as TransformerLens's head detector does (AnalyzeResult.headRoles, "mul"
 * score: the share of each query's attention that falls where the pattern says, averaged) — with
 * every role's score in the cell's tooltip.
 */
import type * as d3 from 'd3';
import type { AnalysisModel } from '../model';

export type HeadRole = 'previous' | 'duplicate' | 'induction';
export const ROLES: readonly { role: HeadRole; badge: string; label: string }[] = [
  { role: 'previous', badge: 'P', label: 'previous-token' },
  { role: 'duplicate', badge: 'D', label: 'duplicate-token' },
  { role: 'induction', badge: 'I', label: 'induction' },
];
/** A score from which the head is said to play the role (the detector's scores lie in [0, 1]). */
export const ROLE_THRESHOLD = 0.3;

/** Every role's score of head (l, h), or null when the analysis carries no roles. */
export function roleScores(m: AnalysisModel, l: number, h: number): { role: HeadRole; badge: string; label: string; score: number }[] | null {
  const roles = m.result?.headRoles;
  if (!roles) return null;
  return ROLES.map((r) => ({ ...r, score: roles[r.role]?.[l * m.H + h] ?? NaN }));
}

/** The roles head (l, h) passes the threshold in, strongest first. */
export function headBadges(m: AnalysisModel, l: number, h: number): { role: HeadRole; badge: string; label: string; score: number }[] {
  return (roleScores(m, l, h) ?? []).filter((r) => Number.isFinite(r.score) && r.score >= ROLE_THRESHOLD).sort((a, b) => b.score - a.score);
}

/** The tooltip line: every role's score (empty without roles). */
export function rolesTitle(m: AnalysisModel, l: number, h: number): string {
  const s = roleScores(m, l, h);
  return s ? `\nroles: ${s.map((r) => `${r.label} ${Number.isFinite(r.score) ? r.score.toFixed(3) : '—'}`).join(', ')}` : '';
}

/** Draw (or remove) the badges in the top-right corner of each overview cell. */
export function drawRoleBadges<D extends { l: number; h: number }>(cells: d3.Selection<SVGGElement, D, SVGSVGElement, number>, m: AnalysisModel, size: number): void {
  const r = Math.max(5, Math.min(8, size / 6));
  type Badge = ReturnType<typeof headBadges>[number];
  cells
    .selectAll<SVGGElement, Badge>('g.role')
    .data((d) => headBadges(m, d.l, d.h), (b) => b.role)
    .join((enter) => {
      const g = enter.append('g');
      g.append('circle');
      g.append('text').attr('text-anchor', 'middle').attr('dy', '0.35em');
      g.append('title');
      return g;
    })
    .attr('class', (b) => `role role-${b.role}`)
    .attr('data-role', (b) => b.role)
    .attr('data-score', (b) => String(b.score))
    .attr('transform', (_, i) => `translate(${size - r - 1 - i * (2 * r + 1)},${r + 1})`)
    .call((g) => g.select('circle').attr('r', r))
    .call((g) => g.select('text').text((b) => b.badge))
    .call((g) => g.select('title').text((b) => `${b.label} head: score ${b.score.toFixed(3)} (badge from ${ROLE_THRESHOLD})`));
}
