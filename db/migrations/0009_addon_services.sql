ALTER TABLE "container_addons" ADD COLUMN "service" jsonb;--> statement-breakpoint
ALTER TABLE "container_addons" ADD COLUMN "tools" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "container_addons" ADD COLUMN "requires" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "container_addons" ADD COLUMN "install_hint" text;