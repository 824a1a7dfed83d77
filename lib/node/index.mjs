// The ESM entry: the same module as index.js.
import pgsnap from "./index.js";

export const { newDatabase, request, serviceInfo, close, startService, Database, PgsnapError } = pgsnap;
export default pgsnap;
