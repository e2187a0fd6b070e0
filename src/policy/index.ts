export { evaluateGate, tierForRisk, riskOf, type GatePolicy } from './gate.ts';
