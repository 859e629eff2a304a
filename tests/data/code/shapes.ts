import { Injectable, Input } from "@angular/core";
import type { Logger } from "./logger";

/** A point in the plane. */
export interface Point<T = number> {
  x: T;
  y: T;
}

export type Pair<A, B> = [A, B];

/**
 * Stores shapes by id.
 *
 * Not thread safe.
 */
@Injectable({ providedIn: "root" })
export class ShapeStore<S extends Point> {
  @Input() name: string = "store";
  private items = new Map<string, S>();

  constructor(private readonly log: Logger) {}

  /** Adds a shape; returns its id. */
  add(shape: S): string {
    const id = String(this.items.size);
    this.items.set(id, shape);
    this.log.info(`added ${id}`);
    return id;
  }

  get size(): number {
    return this.items.size;
  }

  onChange = (id: string): void => {
    this.log.info(id);
  };
}

/** Distance between two points. */
export function distance(a: Point, b: Point): number;
export function distance(a: Point3, b: Point3): number;
export function distance(a: any, b: any): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

export const origin = (): Point => ({ x: 0, y: 0 });

namespace Geometry {
  export function area(w: number, h: number): number {
    return w * h;
  }
}
