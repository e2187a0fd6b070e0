// The scaled clock is a leaf utility shared by the embedded runtime and the cluster.
export { ScaledClock, type ClockOrigin } from './clock.ts';
