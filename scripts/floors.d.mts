export declare const FLOORS: readonly (readonly string[])[];
export declare const GROUND: ReadonlySet<string>;
export declare const PLACEMENT: Readonly<Record<string, string>>;
export declare function folderOf(file: string): string;
export declare function unitOf(file: string): string;
export declare function floorOfUnit(unit: string): number | undefined;
export declare function layerViolation(from: string, to: string): string | undefined;
