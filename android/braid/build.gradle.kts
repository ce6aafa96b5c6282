// The Braid Android library (AAR): the Kotlin layer, the generated bindings, and
// libbraid_ffi.so per ABI in src/main/jniLibs (put there by `cargo xtask android`).
// Published with a POM (JNA as an AAR, kotlinx-coroutines), so apps add one dependency.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

val braidVersion = providers.gradleProperty("braid.version").get()
val jnaVersion = providers.gradleProperty("braid.jnaVersion").get()
val coroutinesVersion = providers.gradleProperty("braid.coroutinesVersion").get()

group = "io.braid"
version = braidVersion

android {
    namespace = "io.braid"
    compileSdk = 35

    defaultConfig {
        minSdk = 23
        consumerProguardFiles("consumer-rules.pro")
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    buildTypes {
        release {
            // The app's R8 run applies consumer-rules.pro; the library itself ships unshrunk.
            isMinifyEnabled = false
        }
    }

    sourceSets["main"].java.srcDir("src/main/kotlin")
    sourceSets["androidTest"].java.srcDir("src/androidTest/kotlin")

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    kotlinOptions {
        jvmTarget = "11"
    }

    packaging {
        jniLibs {
            // Stored uncompressed and page-aligned in the APK: loaded in place, and the .so
            // files are linked with 16 KB segment alignment for Android 15+ devices.
            useLegacyPackaging = false
        }
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

dependencies {
    // The AAR build of JNA carries libjnidispatch.so for every Android ABI; the POM says
    // <type>aar</type>, so apps get that one and not the desktop jar.
    implementation("net.java.dev.jna:jna:$jnaVersion@aar")
    // Flow and suspend functions are part of the public API.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:$coroutinesVersion")

    // Instrumented tests on an emulator (.github/workflows/android-emulator.yml).
    androidTestImplementation("androidx.test.ext:junit:1.2.1")
    androidTestImplementation("androidx.test:runner:1.6.2")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "io.braid"
            artifactId = "braid"
            version = braidVersion
            afterEvaluate { from(components["release"]) }
            pom {
                name.set("Braid")
                description.set("One connection over WiFi and cellular at once: userspace Multipath TCP for Android apps")
                licenses {
                    license { name.set("MIT OR Apache-2.0") }
                }
            }
        }
    }
    repositories {
        // `cargo xtask android` passes -Pbraid.mavenRepo=<target>/android/maven.
        maven {
            name = "local"
            url = uri(providers.gradleProperty("braid.mavenRepo").getOrElse(layout.buildDirectory.dir("maven").get().asFile.path))
        }
    }
}
