CREATE TYPE "public"."addon_category" AS ENUM('interface', 'compute', 'storage', 'devops');--> statement-breakpoint
CREATE TYPE "public"."sandbox_desired_status" AS ENUM('running', 'stopped', 'deleted');--> statement-breakpoint
CREATE TYPE "public"."sandbox_operation_kind" AS ENUM('start', 'stop', 'restart', 'delete');--> statement-breakpoint
CREATE TYPE "public"."sandbox_operation_status" AS ENUM('queued', 'running', 'succeeded', 'failed');--> statement-breakpoint
CREATE TYPE "public"."sandbox_status" AS ENUM('creating', 'starting', 'running', 'stopping', 'stopped', 'error', 'deleting');--> statement-breakpoint
CREATE TYPE "public"."chat_message_status" AS ENUM('streaming', 'complete', 'error', 'cancelled');--> statement-breakpoint
CREATE TYPE "public"."chat_role" AS ENUM('user', 'assistant', 'system');--> statement-breakpoint
CREATE TYPE "public"."chat_session_status" AS ENUM('active', 'archived', 'deleted');--> statement-breakpoint
CREATE TYPE "public"."chat_source" AS ENUM('opencode', 'acp_gateway');--> statement-breakpoint
CREATE TYPE "public"."device_flow_status" AS ENUM('pending', 'completed', 'expired', 'denied', 'cancelled', 'error');--> statement-breakpoint
CREATE TYPE "public"."provider_auth_type" AS ENUM('api_key', 'oauth', 'device_flow');--> statement-breakpoint
CREATE TYPE "public"."agent_file_extension" AS ENUM('md', 'ts', 'js');--> statement-breakpoint
CREATE TYPE "public"."agent_file_type" AS ENUM('agent', 'command', 'tool', 'plugin');--> statement-breakpoint
CREATE TYPE "public"."theme_mode" AS ENUM('light', 'dark', 'system');--> statement-breakpoint
CREATE TYPE "public"."actor_type" AS ENUM('user', 'system');--> statement-breakpoint
CREATE TYPE "public"."onboarding_status" AS ENUM('pending', 'gathering', 'generating', 'applying', 'completed', 'skipped', 'failed');--> statement-breakpoint
CREATE TABLE "accounts" (
	"id" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"provider_id" text NOT NULL,
	"user_id" text NOT NULL,
	"access_token" text,
	"refresh_token" text,
	"id_token" text,
	"access_token_expires_at" timestamp with time zone,
	"refresh_token_expires_at" timestamp with time zone,
	"scope" text,
	"password" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rate_limits" (
	"id" text PRIMARY KEY NOT NULL,
	"key" text NOT NULL,
	"count" integer NOT NULL,
	"last_request" bigint NOT NULL,
	CONSTRAINT "rate_limits_key_unique" UNIQUE("key")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"token" text NOT NULL,
	"ip_address" text,
	"user_agent" text,
	"user_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sessions_token_unique" UNIQUE("token")
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"email" text NOT NULL,
	"email_verified" boolean DEFAULT false NOT NULL,
	"image" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_email_unique" UNIQUE("email")
);
--> statement-breakpoint
CREATE TABLE "verifications" (
	"id" text PRIMARY KEY NOT NULL,
	"identifier" text NOT NULL,
	"value" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "container_addons" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"category" "addon_category" NOT NULL,
	"image_size_mb" integer DEFAULT 0 NOT NULL,
	"port" integer,
	"requires_gpu" boolean DEFAULT false NOT NULL,
	"requires_flavor_id" text,
	"price_monthly" numeric(10, 2) DEFAULT 0 NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"sort_order" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "container_flavors" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"languages" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"image" text NOT NULL,
	"image_size_mb" integer DEFAULT 0 NOT NULL,
	"is_default" boolean DEFAULT false NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"sort_order" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "resource_tiers" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"cpu_cores" numeric(6, 2) NOT NULL,
	"memory_mb" integer NOT NULL,
	"storage_gb" integer NOT NULL,
	"pids_limit" integer DEFAULT 1024 NOT NULL,
	"has_gpu" boolean DEFAULT false NOT NULL,
	"price_monthly" numeric(10, 2) DEFAULT 0 NOT NULL,
	"is_default" boolean DEFAULT false NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"sort_order" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "resource_tiers_limits_positive" CHECK ("resource_tiers"."cpu_cores" > 0 and "resource_tiers"."memory_mb" > 0 and "resource_tiers"."storage_gb" > 0)
);
--> statement-breakpoint
CREATE TABLE "sandbox_addons" (
	"sandbox_id" text NOT NULL,
	"addon_id" text NOT NULL,
	CONSTRAINT "sandbox_addons_sandbox_id_addon_id_pk" PRIMARY KEY("sandbox_id","addon_id")
);
--> statement-breakpoint
CREATE TABLE "sandbox_operations" (
	"id" text PRIMARY KEY NOT NULL,
	"sandbox_id" text NOT NULL,
	"user_id" text,
	"kind" "sandbox_operation_kind" NOT NULL,
	"status" "sandbox_operation_status" DEFAULT 'queued' NOT NULL,
	"reason" text,
	"request_id" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"run_after" timestamp with time zone DEFAULT now() NOT NULL,
	"claimed_by" text,
	"claimed_until" timestamp with time zone,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sandboxes" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"name" text NOT NULL,
	"slug" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"repository_url" text,
	"resource_tier_id" text NOT NULL,
	"flavor_id" text NOT NULL,
	"env" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"idle_timeout_minutes" integer DEFAULT 30 NOT NULL,
	"auto_start" boolean DEFAULT false NOT NULL,
	"status" "sandbox_status" DEFAULT 'creating' NOT NULL,
	"desired_status" "sandbox_desired_status" DEFAULT 'stopped' NOT NULL,
	"status_reason" text,
	"error_message" text,
	"version" integer DEFAULT 1 NOT NULL,
	"driver" text,
	"workload_id" text,
	"image" text,
	"applied_limits" jsonb,
	"agent_port" integer,
	"agent_secret" text,
	"last_activity_at" timestamp with time zone,
	"started_at" timestamp with time zone,
	"stopped_at" timestamp with time zone,
	"transition_started_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workload_cleanups" (
	"id" text PRIMARY KEY NOT NULL,
	"sandbox_id" text NOT NULL,
	"driver" text NOT NULL,
	"workload_id" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"run_after" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat_message_parts" (
	"id" text PRIMARY KEY NOT NULL,
	"message_id" text NOT NULL,
	"external_part_id" text NOT NULL,
	"type" text NOT NULL,
	"content" jsonb NOT NULL,
	"position" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat_messages" (
	"id" text PRIMARY KEY NOT NULL,
	"session_id" text NOT NULL,
	"user_id" text NOT NULL,
	"external_message_id" text,
	"role" "chat_role" NOT NULL,
	"content" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"tool_calls" jsonb,
	"tool_results" jsonb,
	"thinking" jsonb,
	"text" text DEFAULT '' NOT NULL,
	"search_vector" "tsvector" GENERATED ALWAYS AS (to_tsvector('simple', left(coalesce("text", ''), 100000))) STORED,
	"model_provider" text,
	"model_id" text,
	"agent_id" text,
	"input_tokens" integer DEFAULT 0 NOT NULL,
	"output_tokens" integer DEFAULT 0 NOT NULL,
	"reasoning_tokens" integer DEFAULT 0 NOT NULL,
	"cost" numeric(14, 6) DEFAULT 0 NOT NULL,
	"status" "chat_message_status" DEFAULT 'complete' NOT NULL,
	"error_message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"sandbox_id" text,
	"source" "chat_source" DEFAULT 'opencode' NOT NULL,
	"external_session_id" text,
	"acp_agent_id" text,
	"title" text DEFAULT '' NOT NULL,
	"status" "chat_session_status" DEFAULT 'active' NOT NULL,
	"message_count" integer DEFAULT 0 NOT NULL,
	"user_message_count" integer DEFAULT 0 NOT NULL,
	"assistant_message_count" integer DEFAULT 0 NOT NULL,
	"total_input_tokens" bigint DEFAULT 0 NOT NULL,
	"total_output_tokens" bigint DEFAULT 0 NOT NULL,
	"total_cost" numeric(14, 6) DEFAULT 0 NOT NULL,
	"last_message_at" timestamp with time zone,
	"last_synced_at" timestamp with time zone,
	"external_updated_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat_sync_state" (
	"sandbox_id" text PRIMARY KEY NOT NULL,
	"lease_holder" text,
	"lease_expires_at" timestamp with time zone,
	"connected" boolean DEFAULT false NOT NULL,
	"last_event_at" timestamp with time zone,
	"last_event_id" text,
	"last_reconciled_at" timestamp with time zone,
	"last_error" text,
	"consecutive_errors" integer DEFAULT 0 NOT NULL,
	"events_ingested" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oauth_device_flows" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"provider_id" text NOT NULL,
	"device_code" text NOT NULL,
	"key_id" text NOT NULL,
	"user_code" text NOT NULL,
	"verification_uri" text NOT NULL,
	"interval_seconds" integer DEFAULT 5 NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"status" "device_flow_status" DEFAULT 'pending' NOT NULL,
	"error_message" text,
	"last_polled_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "provider_catalog_state" (
	"source" text PRIMARY KEY NOT NULL,
	"fetched_at" timestamp with time zone,
	"etag" text,
	"provider_count" integer DEFAULT 0 NOT NULL,
	"model_count" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"last_attempt_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "provider_credentials" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"provider_id" text NOT NULL,
	"auth_type" "provider_auth_type" NOT NULL,
	"secret" text NOT NULL,
	"refresh_secret" text,
	"key_id" text NOT NULL,
	"hint" text NOT NULL,
	"base_url" text,
	"token_expires_at" timestamp with time zone,
	"scopes" jsonb,
	"last_used_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "provider_models" (
	"provider_id" text NOT NULL,
	"id" text NOT NULL,
	"name" text NOT NULL,
	"context_window" integer,
	"max_output" integer,
	"input_price" numeric(12, 6),
	"output_price" numeric(12, 6),
	"cache_read_price" numeric(12, 6),
	"capabilities" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"release_date" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "provider_models_provider_id_id_pk" PRIMARY KEY("provider_id","id")
);
--> statement-breakpoint
CREATE TABLE "providers" (
	"id" text PRIMARY KEY NOT NULL,
	"owner_user_id" text,
	"name" text NOT NULL,
	"auth_types" jsonb DEFAULT '["api_key"]'::jsonb NOT NULL,
	"env_vars" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"npm_package" text,
	"base_url" text,
	"doc_url" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "user_agent_config" (
	"user_id" text PRIMARY KEY NOT NULL,
	"config" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"agents_md" text DEFAULT '' NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "user_agent_files" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"type" "agent_file_type" NOT NULL,
	"name" text NOT NULL,
	"extension" "agent_file_extension" NOT NULL,
	"content" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "user_preferences" (
	"user_id" text PRIMARY KEY NOT NULL,
	"theme_mode" "theme_mode" DEFAULT 'system' NOT NULL,
	"theme_preset" text DEFAULT 'default' NOT NULL,
	"auto_refresh_interval" integer DEFAULT 30 NOT NULL,
	"in_app_notifications" boolean DEFAULT true NOT NULL,
	"system_notifications" boolean DEFAULT false NOT NULL,
	"default_resource_tier_id" text,
	"default_flavor_id" text,
	"default_addon_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"default_agent_id" text,
	"default_provider_id" text,
	"default_model_id" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "user_preferences_refresh_range" CHECK ("user_preferences"."auto_refresh_interval" between 5 and 300)
);
--> statement-breakpoint
CREATE TABLE "activity_log" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text,
	"actor_type" "actor_type" DEFAULT 'user' NOT NULL,
	"action" text NOT NULL,
	"entity_type" text,
	"entity_id" text,
	"reason" text,
	"request_id" text,
	"ip_address" text,
	"user_agent" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"anonymized" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "activity_log_archive" (
	"id" text PRIMARY KEY NOT NULL,
	"actor_type" "actor_type" DEFAULT 'user' NOT NULL,
	"action" text NOT NULL,
	"entity_type" text,
	"entity_id" text,
	"reason" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"original_created_at" timestamp with time zone NOT NULL,
	"archived_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "knowledge_documents" (
	"id" text PRIMARY KEY NOT NULL,
	"slug" text NOT NULL,
	"category" text NOT NULL,
	"title" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"content" text NOT NULL,
	"front_matter" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"applicability" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"content_hash" text NOT NULL,
	"source" text DEFAULT 'seed' NOT NULL,
	"search_vector" "tsvector" GENERATED ALWAYS AS (setweight(to_tsvector('english', coalesce("title", '')), 'A') || setweight(to_tsvector('english', coalesce("description", '')), 'B') || setweight(to_tsvector('english', coalesce("content", '')), 'C')) STORED,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "knowledge_documents_slug_unique" UNIQUE("slug")
);
--> statement-breakpoint
CREATE TABLE "mcp_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"sandbox_id" text NOT NULL,
	"user_id" text NOT NULL,
	"token_hash" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "onboarding_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"sandbox_id" text NOT NULL,
	"user_id" text NOT NULL,
	"status" "onboarding_status" DEFAULT 'pending' NOT NULL,
	"requirements" jsonb,
	"recommendations" jsonb,
	"generated" jsonb,
	"error_message" text,
	"applied_at" timestamp with time zone,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"user_id" text NOT NULL,
	"key" text NOT NULL,
	"scope" text NOT NULL,
	"request_hash" text NOT NULL,
	"response_status" integer,
	"response_body" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_user_id_scope_key_pk" PRIMARY KEY("user_id","scope","key")
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"name" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"acquired_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "container_addons" ADD CONSTRAINT "container_addons_requires_flavor_id_container_flavors_id_fk" FOREIGN KEY ("requires_flavor_id") REFERENCES "public"."container_flavors"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandbox_addons" ADD CONSTRAINT "sandbox_addons_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandbox_addons" ADD CONSTRAINT "sandbox_addons_addon_id_container_addons_id_fk" FOREIGN KEY ("addon_id") REFERENCES "public"."container_addons"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandbox_operations" ADD CONSTRAINT "sandbox_operations_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandbox_operations" ADD CONSTRAINT "sandbox_operations_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_resource_tier_id_resource_tiers_id_fk" FOREIGN KEY ("resource_tier_id") REFERENCES "public"."resource_tiers"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_flavor_id_container_flavors_id_fk" FOREIGN KEY ("flavor_id") REFERENCES "public"."container_flavors"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_message_parts" ADD CONSTRAINT "chat_message_parts_message_id_chat_messages_id_fk" FOREIGN KEY ("message_id") REFERENCES "public"."chat_messages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_session_id_chat_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."chat_sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "chat_sync_state" ADD CONSTRAINT "chat_sync_state_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oauth_device_flows" ADD CONSTRAINT "oauth_device_flows_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oauth_device_flows" ADD CONSTRAINT "oauth_device_flows_provider_id_providers_id_fk" FOREIGN KEY ("provider_id") REFERENCES "public"."providers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "provider_credentials" ADD CONSTRAINT "provider_credentials_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "provider_credentials" ADD CONSTRAINT "provider_credentials_provider_id_providers_id_fk" FOREIGN KEY ("provider_id") REFERENCES "public"."providers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "provider_models" ADD CONSTRAINT "provider_models_provider_id_providers_id_fk" FOREIGN KEY ("provider_id") REFERENCES "public"."providers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "providers" ADD CONSTRAINT "providers_owner_user_id_users_id_fk" FOREIGN KEY ("owner_user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_agent_config" ADD CONSTRAINT "user_agent_config_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_agent_files" ADD CONSTRAINT "user_agent_files_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_default_resource_tier_id_resource_tiers_id_fk" FOREIGN KEY ("default_resource_tier_id") REFERENCES "public"."resource_tiers"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_default_flavor_id_container_flavors_id_fk" FOREIGN KEY ("default_flavor_id") REFERENCES "public"."container_flavors"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_default_provider_id_providers_id_fk" FOREIGN KEY ("default_provider_id") REFERENCES "public"."providers"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "activity_log" ADD CONSTRAINT "activity_log_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_tokens" ADD CONSTRAINT "mcp_tokens_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_tokens" ADD CONSTRAINT "mcp_tokens_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "onboarding_sessions" ADD CONSTRAINT "onboarding_sessions_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "onboarding_sessions" ADD CONSTRAINT "onboarding_sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "accounts_user_id_idx" ON "accounts" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "accounts_provider_account_uq" ON "accounts" USING btree ("provider_id","account_id");--> statement-breakpoint
CREATE INDEX "sessions_user_id_idx" ON "sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sessions_expires_at_idx" ON "sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "verifications_identifier_idx" ON "verifications" USING btree ("identifier");--> statement-breakpoint
CREATE UNIQUE INDEX "container_flavors_one_default_uq" ON "container_flavors" USING btree ("is_default") WHERE "container_flavors"."is_default";--> statement-breakpoint
CREATE UNIQUE INDEX "resource_tiers_one_default_uq" ON "resource_tiers" USING btree ("is_default") WHERE "resource_tiers"."is_default";--> statement-breakpoint
CREATE INDEX "sandbox_addons_addon_idx" ON "sandbox_addons" USING btree ("addon_id");--> statement-breakpoint
CREATE INDEX "sandbox_operations_pending_idx" ON "sandbox_operations" USING btree ("run_after") WHERE "sandbox_operations"."status" in ('queued', 'running');--> statement-breakpoint
CREATE INDEX "sandbox_operations_sandbox_idx" ON "sandbox_operations" USING btree ("sandbox_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "sandboxes_user_slug_uq" ON "sandboxes" USING btree ("user_id","slug");--> statement-breakpoint
CREATE INDEX "sandboxes_user_created_idx" ON "sandboxes" USING btree ("user_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sandboxes_active_status_idx" ON "sandboxes" USING btree ("status") WHERE "sandboxes"."status" not in ('stopped');--> statement-breakpoint
CREATE UNIQUE INDEX "workload_cleanups_sandbox_uq" ON "workload_cleanups" USING btree ("sandbox_id");--> statement-breakpoint
CREATE INDEX "workload_cleanups_pending_idx" ON "workload_cleanups" USING btree ("run_after") WHERE "workload_cleanups"."completed_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "chat_message_parts_external_uq" ON "chat_message_parts" USING btree ("message_id","external_part_id");--> statement-breakpoint
CREATE UNIQUE INDEX "chat_messages_external_uq" ON "chat_messages" USING btree ("session_id","external_message_id") WHERE "chat_messages"."external_message_id" is not null;--> statement-breakpoint
CREATE INDEX "chat_messages_session_idx" ON "chat_messages" USING btree ("session_id","created_at","id");--> statement-breakpoint
CREATE INDEX "chat_messages_user_created_idx" ON "chat_messages" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "chat_messages_search_idx" ON "chat_messages" USING gin ("search_vector");--> statement-breakpoint
CREATE UNIQUE INDEX "chat_sessions_external_uq" ON "chat_sessions" USING btree ("sandbox_id","source","external_session_id") WHERE "chat_sessions"."external_session_id" is not null;--> statement-breakpoint
CREATE INDEX "chat_sessions_sandbox_idx" ON "chat_sessions" USING btree ("sandbox_id","updated_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "chat_sessions_user_idx" ON "chat_sessions" USING btree ("user_id","updated_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "oauth_device_flows_user_idx" ON "oauth_device_flows" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "oauth_device_flows_expires_idx" ON "oauth_device_flows" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "provider_credentials_user_provider_uq" ON "provider_credentials" USING btree ("user_id","provider_id");--> statement-breakpoint
CREATE INDEX "provider_credentials_key_idx" ON "provider_credentials" USING btree ("key_id");--> statement-breakpoint
CREATE INDEX "providers_owner_idx" ON "providers" USING btree ("owner_user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "providers_owner_name_uq" ON "providers" USING btree ("owner_user_id","name") WHERE "providers"."owner_user_id" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "user_agent_files_user_type_name_uq" ON "user_agent_files" USING btree ("user_id","type","name");--> statement-breakpoint
CREATE INDEX "activity_log_user_created_idx" ON "activity_log" USING btree ("user_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "activity_log_user_entity_idx" ON "activity_log" USING btree ("user_id","entity_type","entity_id");--> statement-breakpoint
CREATE INDEX "activity_log_created_idx" ON "activity_log" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "activity_log_archive_created_idx" ON "activity_log_archive" USING btree ("original_created_at");--> statement-breakpoint
CREATE INDEX "activity_log_archive_action_idx" ON "activity_log_archive" USING btree ("action");--> statement-breakpoint
CREATE INDEX "knowledge_documents_category_idx" ON "knowledge_documents" USING btree ("category");--> statement-breakpoint
CREATE INDEX "knowledge_documents_tags_idx" ON "knowledge_documents" USING gin ("tags");--> statement-breakpoint
CREATE INDEX "knowledge_documents_search_idx" ON "knowledge_documents" USING gin ("search_vector");--> statement-breakpoint
CREATE INDEX "knowledge_documents_title_trgm_idx" ON "knowledge_documents" USING gin ("title" gin_trgm_ops);--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_tokens_hash_uq" ON "mcp_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "mcp_tokens_sandbox_idx" ON "mcp_tokens" USING btree ("sandbox_id");--> statement-breakpoint
CREATE UNIQUE INDEX "onboarding_sessions_sandbox_uq" ON "onboarding_sessions" USING btree ("sandbox_id");--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_idx" ON "idempotency_keys" USING btree ("expires_at");