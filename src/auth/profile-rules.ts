import { APIError } from "better-auth/api";
import { withoutHidden } from "../lib/text";
import type { HookContext } from "../services/activity/auth-events";
import { PROFILE_NAME_MAX, profileImage, profileName } from "../services/account/profile";

type NewUser = { email: string; name?: string | null; image?: string | null };

/**
 * Better Auth's user.create.before: a new account's name and avatar follow the rules PATCH
 * /api/v1/me enforces. Before, an email sign-up took a blank name, 3,000 characters of one, or
 * "javascript:alert(1)" as its avatar, none of which the profile route would accept.
 * - An email sign-up (`/sign-up/email`) that breaks them is refused, naming the field.
 * - A GitHub sign-in cannot be asked again: the provider's profile is fitted instead (the name
 *   without control characters or bidirectional overrides, trimmed and cut to PROFILE_NAME_MAX,
 *   or the email's local part when that leaves nothing; an avatar that is not https dropped).
 */
export function profileOnCreate() {
  return async <U extends NewUser>(user: U, context: HookContext): Promise<{ data: U }> => {
    const name = profileName().safeParse(user.name ?? "");
    const image = user.image == null ? null : profileImage().safeParse(user.image);
    if (context?.path?.startsWith("/sign-up/")) {
      if (!name.success) throw refused("name", name.error.issues[0]!.message);
      if (image && !image.success) throw refused("image", image.error.issues[0]!.message);
      return { data: { ...user, name: name.data } };
    }
    const fitted = name.success ? name.data : firstCodePoints(withoutHidden(user.name ?? "").trim(), PROFILE_NAME_MAX) || user.email.split("@")[0]!.slice(0, PROFILE_NAME_MAX);
    return { data: { ...user, name: fitted, image: image?.success ? image.data : null } };
  };
}

/** zod counts a string's length in code points: cut the same way, never through a surrogate pair. */
const firstCodePoints = (s: string, max: number) => Array.from(s).slice(0, max).join("");

function refused(field: string, message: string): APIError {
  return new APIError("BAD_REQUEST", { message: `Invalid body field "${field}": ${message}`, code: "INVALID_PROFILE" });
}
