export { evaluateGate, tierForRisk, riskOf, type GatePolicy } from './gate.ts';
export {
  checkFreshness,
  withFreshness,
  flagsStale,
  freshnessRule,
  maxAgeFor,
  FRESHNESS_STALE,
  FRESHNESS_FRESH,
  type FreshnessCheck,
} from './freshness.ts';
